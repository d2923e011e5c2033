"""From a config's ``model:`` string to a directory of model files.

``model:`` may be a local directory, a catalog name (assembled from PyPI packages when
they are installed, else downloaded from the hub), or any hub repo id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bragi.errors import ConfigError
from bragi.models.catalog import Catalog, CatalogEntry
from bragi.models.packaged import assembled, is_installed, materialize
from bragi.models.store import DownloadProgress, HubSource, ModelStore

__all__ = ["ModelSource", "fetch_source", "local_copy", "plan_source"]

_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where a model's files come from. Exactly one of ``path``/``hub``/packaged applies."""

    reference: str  # what the user wrote
    catalog: CatalogEntry | None = None
    path: Path | None = None  # a local directory
    hub: HubSource | None = None  # a hub download
    packaged: bool = False  # assembled from PyPI packages (catalog.packaged)

    @property
    def origin(self) -> str:
        if self.path is not None:
            return f"local directory {self.path}"
        if self.packaged:
            return "PyPI packages (offline)"
        assert self.hub is not None
        return f"hub repo {self.hub.repo_id}"


def _expanded(reference: str) -> Path:
    """``reference`` as a path with ``~`` or ``~user`` expanded; a user that does not
    exist (``~0``) is a ConfigError, not the RuntimeError ``expanduser`` raises."""
    try:
        return Path(reference).expanduser()
    except RuntimeError as exc:
        raise ConfigError(f"model directory {reference!r}: {exc}") from None


def _looks_like_path(reference: str) -> bool:
    return reference.startswith(("/", "./", "../", "~")) or _expanded(reference).is_dir()


def plan_source(reference: str, revision: str | None, catalog: Catalog) -> ModelSource:
    """Decide where ``reference`` comes from, without touching the network."""
    if _looks_like_path(reference):
        path = _expanded(reference).resolve()
        if not path.is_dir():
            raise ConfigError(f"model directory {reference!r} does not exist")
        return ModelSource(reference, path=path)
    entry = catalog.get(reference)
    if entry is not None:
        if entry.packaged is not None and is_installed(entry.packaged):
            return ModelSource(reference, catalog=entry, packaged=True)
        if entry.repo is not None:
            revision = revision or entry.revision
            hub = HubSource(entry.repo, revision, entry.files, entry.archive, entry.subdir)
            return ModelSource(reference, catalog=entry, hub=hub)
        return ModelSource(reference, catalog=entry, packaged=True)  # materialize explains
    if _REPO_ID.match(reference):
        return ModelSource(reference, hub=HubSource(reference, revision, None))
    known = ", ".join(sorted(e.name for e in catalog.entries()))
    raise ConfigError(
        f"model {reference!r} is not a catalog name, a hub repo id (org/name) "
        f"or an existing directory; catalog names: {known}"
    )


def local_copy(source: ModelSource, store: ModelStore) -> Path | None:
    """The model's directory if it is already on disk, without assembling or downloading."""
    if source.path is not None:
        return source.path
    if source.packaged:
        entry = source.catalog
        assert entry is not None
        return assembled(entry.name, entry.packaged, store.root) if entry.packaged else None
    assert source.hub is not None
    return store.local_path(source.hub)


def fetch_source(
    source: ModelSource,
    store: ModelStore,
    progress: Callable[[DownloadProgress], None] | None = None,
) -> Path:
    """The model's directory, assembling or downloading it if needed (blocking)."""
    if source.path is not None:
        return source.path
    if source.packaged:
        entry = source.catalog
        assert entry is not None
        if entry.packaged is None:
            raise ConfigError(f"catalog entry {entry.name!r} has no source")
        return materialize(entry.name, entry.packaged, store.root)
    assert source.hub is not None
    return store.fetch(source.hub, progress)
