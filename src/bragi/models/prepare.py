"""Turning a configured model into files on disk, a backend and validated options."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from bragi.backends.protocol import Backend, BackendOptions, IsolatedBackend, ModelCheck
from bragi.backends.registry import BackendRegistry
from bragi.config import ModelConfig
from bragi.errors import ConfigError, ModelFetchError
from bragi.models.companions import fetch_companions
from bragi.models.resolve import ModelSource, companion_dirs, fetch_source
from bragi.models.store import DownloadProgress, ModelStore

if TYPE_CHECKING:
    from bragi.models.served import ServedModel

__all__ = ["check_model", "choose_backend", "prepare_model", "validate_options"]


def validate_options(
    alias: str,
    backend: Backend,
    config: ModelConfig,
    source: ModelSource,
    companions: Mapping[str, Path] | None = None,
) -> BackendOptions:
    """The model's options: the catalog's, then its companion repos' directories (see
    :func:`~bragi.models.resolve.companion_dirs`), then the configured ones."""
    defaults = source.catalog.options if source.catalog is not None else {}
    given = {option: str(path) for option, path in (companions or {}).items()}
    try:
        return backend.options_model.model_validate({**defaults, **given, **config.options})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = "unknown option" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(
            f"invalid configuration: models.{alias}.options.{where}: {message}"
        ) from None


def choose_backend(
    alias: str,
    config: ModelConfig,
    source: ModelSource,
    registry: BackendRegistry,
    model_dir: Path | None,
) -> Backend | None:
    """The configured, catalogued or detected backend; None if it needs the files first.

    A torch engine (an :class:`IsolatedBackend`) is never chosen for a hub repo outside
    the catalog by detection alone: that needs an explicit ``backend:``.
    """
    if config.backend is not None:
        return registry.get(config.backend)
    if source.catalog is not None:
        return registry.get(source.catalog.backend)
    if model_dir is None:
        return None
    backend = registry.detect(model_dir)
    if backend is None:
        raise ConfigError(
            f"model {alias!r} ({config.model}): no backend recognises the files in "
            f"{model_dir}; installed backends: {registry.describe_installed()}"
        )
    if isinstance(backend, IsolatedBackend) and source.hub is not None:
        # Torch engines run code that comes with the model (pickles, hyperparameter files
        # that call Python): a repo outside the catalog is not loaded on its looks alone.
        raise ConfigError(
            f"model {alias!r} ({config.model}): its files are a {backend.name} model, and "
            f"{backend.name} runs code that comes with the model; Bragi loads such a model "
            "from a hub repo outside its catalog only when told to: if you trust "
            f"{config.model}, set `backend: {backend.name}` for it (models.{alias}.backend)"
        )
    return backend


def check_model(backend: Backend, model_dir: Path) -> None:
    """ConfigError when the backend refuses the files it recognised (see ModelCheck)."""
    if isinstance(backend, ModelCheck):
        backend.check(model_dir)


def prepare_model(
    model: ServedModel,
    registry: BackendRegistry,
    store: ModelStore,
    progress: Callable[[DownloadProgress], None] | None = None,
) -> tuple[Backend, Path, BackendOptions]:
    """Fetch the files (blocking), pick the backend, validate options."""
    model_dir = fetch_source(model.source, store, progress)
    if not model_dir.is_dir():  # a local directory that is gone (a volume not mounted yet)
        raise ModelFetchError(f"model directory {model_dir} does not exist")
    backend = choose_backend(model.alias, model.config, model.source, registry, model_dir)
    assert backend is not None
    registry.require_available(backend)
    check_model(backend, model_dir)
    companions = companion_dirs(model.source, store)  # the catalog's other repos (F5's vocoder)
    options = validate_options(model.alias, backend, model.config, model.source, companions)
    options = fetch_companions(backend, options, store, progress)  # a diarizer's embedding
    return backend, model_dir, options
