"""Second models a backend needs beside its own (a diarizer's speaker-embedding model):
resolved and fetched like any model, then handed to ``load`` as directories in the options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bragi.backends.protocol import Backend, BackendOptions, CompanionModels
from bragi.models.catalog import Catalog
from bragi.models.resolve import fetch_source, local_copy, plan_source
from bragi.models.store import DownloadProgress, ModelStore

__all__ = ["fetch_companions", "local_companions"]


def _references(backend: Backend, options: BackendOptions) -> dict[str, str]:
    return backend.companions(options) if isinstance(backend, CompanionModels) else {}


def _resolved(options: BackendOptions, paths: dict[str, Path]) -> BackendOptions:
    return options.model_copy(update={k: str(v) for k, v in paths.items()}) if paths else options


def _is_file(reference: str) -> bool:
    return Path(reference).expanduser().is_file()


def fetch_companions(
    backend: Backend,
    options: BackendOptions,
    store: ModelStore,
    progress: Callable[[DownloadProgress], None] | None = None,
) -> BackendOptions:
    """``options`` with each companion model fetched and replaced by its directory."""
    paths: dict[str, Path] = {}
    for field, reference in _references(backend, options).items():
        if _is_file(reference):  # a single .onnx file needs no store
            paths[field] = Path(reference).expanduser().resolve()
            continue
        source = plan_source(reference, None, Catalog.builtin())
        paths[field] = fetch_source(source, store, progress)
    return _resolved(options, paths)


def local_companions(
    backend: Backend, options: BackendOptions, store: ModelStore
) -> BackendOptions | None:
    """``options`` with companions resolved from disk; None while one still has to be fetched."""
    paths: dict[str, Path] = {}
    for field, reference in _references(backend, options).items():
        if _is_file(reference):
            paths[field] = Path(reference).expanduser().resolve()
            continue
        on_disk = local_copy(plan_source(reference, None, Catalog.builtin()), store)
        if on_disk is None:
            return None
        paths[field] = on_disk
    return _resolved(options, paths)
