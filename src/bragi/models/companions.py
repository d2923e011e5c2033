"""Second models a backend needs beside its own (a diarizer's speaker-embedding model):
resolved and fetched like any model, then handed to ``load`` as paths in the options.

A companion that is a catalog entry naming one file resolves to that file, not to its
directory: catalog entries may share a hub repo (both CAM++ embedding models live in one),
and the store keeps one folder per repo.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bragi.backends.protocol import Backend, BackendOptions, CompanionModels
from bragi.backends.registry import BackendRegistry
from bragi.models.catalog import Catalog
from bragi.models.resolve import ModelSource, fetch_source, local_copy, plan_source
from bragi.models.store import DownloadProgress, ModelStore

__all__ = ["catalog_companions", "companion_sources", "fetch_companions", "local_companions"]

_GLOB = frozenset("*?[")


def _references(backend: Backend, options: BackendOptions) -> dict[str, str]:
    return backend.companions(options) if isinstance(backend, CompanionModels) else {}


def _resolved(options: BackendOptions, paths: dict[str, Path]) -> BackendOptions:
    return options.model_copy(update={k: str(v) for k, v in paths.items()}) if paths else options


def _is_file(reference: str) -> bool:
    return Path(reference).expanduser().is_file()


def _named_file(source: ModelSource, directory: Path) -> Path:
    """The one file a catalog entry names inside ``directory``, else the directory."""
    entry = source.catalog
    files = entry.files if entry is not None else None
    if files and len(files) == 1 and not _GLOB & set(files[0]):
        named = directory / files[0]
        if named.is_file():
            return named
    return directory


def companion_sources(backend: Backend, options: BackendOptions) -> dict[str, ModelSource]:
    """Option name -> where its companion model comes from (files given by path left out)."""
    return {
        field: plan_source(reference, None, Catalog.builtin())
        for field, reference in _references(backend, options).items()
        if not _is_file(reference)
    }


def catalog_companions(source: ModelSource, registry: BackendRegistry) -> dict[str, ModelSource]:
    """The companions a catalog entry's own options name (``bragi pull`` fetches them)."""
    entry = source.catalog
    if entry is None:
        return {}
    backend = registry.get(entry.backend)
    return companion_sources(backend, backend.options_model.model_validate(entry.options))


def fetch_companions(
    backend: Backend,
    options: BackendOptions,
    store: ModelStore,
    progress: Callable[[DownloadProgress], None] | None = None,
) -> BackendOptions:
    """``options`` with each companion model fetched and replaced by its path."""
    paths: dict[str, Path] = {}
    for field, source in companion_sources(backend, options).items():
        paths[field] = _named_file(source, fetch_source(source, store, progress))
    for field, reference in _references(backend, options).items():
        if field not in paths:  # a single .onnx file needs no store
            paths[field] = Path(reference).expanduser().resolve()
    return _resolved(options, paths)


def local_companions(
    backend: Backend, options: BackendOptions, store: ModelStore
) -> BackendOptions | None:
    """``options`` with companions resolved from disk; None while one still has to be fetched."""
    paths: dict[str, Path] = {}
    for field, source in companion_sources(backend, options).items():
        on_disk = local_copy(source, store)
        if on_disk is None:
            return None
        paths[field] = _named_file(source, on_disk)
    for field, reference in _references(backend, options).items():
        if field not in paths:
            paths[field] = Path(reference).expanduser().resolve()
    return _resolved(options, paths)
