"""What is on disk: models assembled from PyPI packages and hub repos in the store.

``bragi list`` prints this; ``GET /admin/downloads`` sends it to the web page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bragi.backends.registry import BackendRegistry
from bragi.models.catalog import Catalog
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


def downloaded_models(
    store: ModelStore, registry: BackendRegistry, catalog: Catalog | None = None
) -> list[Downloaded]:
    """Every model on disk: PyPI-assembled ones first, then hub repos, each by name. A
    repo that a catalog model needs as a companion (F5-TTS's vocoder) is listed with that
    model's repo (``SWivid/F5-TTS + charactr/vocos-mel-24khz``), not by itself."""
    rows = []
    packaged_root = store.root / "packaged"
    if packaged_root.is_dir():
        for path in sorted(p for p in packaged_root.iterdir() if p.is_dir() and p.name[0] != "."):
            name = path.name.replace("--", ":")
            rows.append(Downloaded(name, "pypi", _size(path), _backends(registry, path), path))
    stored_repos = store.list()
    companions = _companions_of({s.repo_id for s in stored_repos}, catalog)
    folded = set().union(*companions.values())
    for stored in stored_repos:
        if stored.repo_id in folded:
            continue  # listed with the model that needs it
        # a repo of archives (Vosk zips) holds its models in what was unpacked from them
        backends = _backends(registry, *stored.unpacked, stored.path)
        extra = [s for s in stored_repos if s.repo_id in companions.get(stored.repo_id, ())]
        name = stored.repo_id + "".join(f" + {s.repo_id}" for s in extra)
        size = stored.size_bytes + sum(s.size_bytes for s in extra)
        rows.append(Downloaded(name, "hub", size, backends, stored.path))
    return rows


def _companions_of(repos: set[str], catalog: Catalog | None) -> dict[str, set[str]]:
    """Stored main repo ─▶ the stored companion repos a catalog model of it needs."""
    found: dict[str, set[str]] = {}
    for entry in catalog.entries() if catalog is not None else ():
        if entry.repo in repos:
            for companion in entry.companions:
                if companion.repo in repos:
                    found.setdefault(entry.repo, set()).add(companion.repo)
    return found
