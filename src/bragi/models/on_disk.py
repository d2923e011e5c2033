"""What is on disk: models assembled from PyPI packages and hub repos in the store.

``bragi list`` prints this; ``GET /admin/downloads`` sends it to the web page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bragi.backends.registry import BackendRegistry
from bragi.models.store import ModelStore

__all__ = ["Downloaded", "downloaded_models"]


@dataclass(frozen=True, slots=True)
class Downloaded:
    name: str  # the catalog name (assembled from PyPI) or the hub repo id
    source: Literal["pypi", "hub"]
    size_bytes: int
    backends: tuple[str, ...]  # the engines that recognise its files (none: unknown)
    path: Path


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _backends(registry: BackendRegistry, *paths: Path) -> tuple[str, ...]:
    found = {backend.name for path in paths if (backend := registry.detect(path))}
    return tuple(sorted(found))


def downloaded_models(store: ModelStore, registry: BackendRegistry) -> list[Downloaded]:
    """Every model on disk: PyPI-assembled ones first, then hub repos, each by name."""
    rows = []
    packaged_root = store.root / "packaged"
    if packaged_root.is_dir():
        for path in sorted(p for p in packaged_root.iterdir() if p.is_dir() and p.name[0] != "."):
            name = path.name.replace("--", ":")
            rows.append(Downloaded(name, "pypi", _size(path), _backends(registry, path), path))
    for stored in store.list():
        # a repo of archives (Vosk zips) holds its models in what was unpacked from them
        backends = _backends(registry, *stored.unpacked, stored.path)
        rows.append(Downloaded(stored.repo_id, "hub", stored.size_bytes, backends, stored.path))
    return rows
