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

__all__ = [
    "ModelSource",
    "companion_dirs",
    "fetch_source",
    "local_copy",
    "plan_source",
    "remove_companions",
]

_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where a model's files come from. Exactly one of ``path``/``hub``/packaged applies."""

    reference: str  # what the user wrote
    catalog: CatalogEntry | None = None
    path: Path | None = None  # a local directory
    hub: HubSource | None = None  # a hub download
    packaged: bool = False  # assembled from PyPI packages (catalog.packaged)
    #: Other hub repos the model needs (catalog ``companions``): (backend option, source).
    companions: tuple[tuple[str, HubSource], ...] = ()

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
            companions = tuple(
                (c.option, HubSource(c.repo, c.revision, c.files)) for c in entry.companions
            )
            return ModelSource(reference, catalog=entry, hub=hub, companions=companions)
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
    if len(companion_dirs(source, store)) < len(source.companions):
        return None  # a model is on disk only with everything it needs
    return store.local_path(source.hub)


def companion_dirs(source: ModelSource, store: ModelStore) -> dict[str, Path]:
    """The companion repos already in the store, by the backend option that takes them."""
    found = {}
    for option, hub in source.companions:
        path = store.local_path(hub)
        if path is not None:
            found[option] = path
    return found


def remove_companions(source: ModelSource, store: ModelStore, catalog: Catalog) -> dict[str, int]:
    """Delete the companion repos of ``source`` that no other downloaded catalog model
    needs (call it after removing the model itself); bytes freed by repo id."""
    still_needed = {
        companion.repo
        for entry in catalog.entries()
        if entry.repo is not None and entry.repo != (source.hub.repo_id if source.hub else None)
        for companion in entry.companions
        if store.local_path(HubSource(entry.repo, entry.revision, entry.files)) is not None
    }
    removed = {}
    for _option, hub in source.companions:
        if hub.repo_id not in still_needed and (freed := store.remove(hub)):
            removed[hub.repo_id] = freed
    return removed


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
    path = store.fetch(source.hub, progress)
    for _option, companion in source.companions:
        store.fetch(companion, progress)
    return path
