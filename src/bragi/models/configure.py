"""Building the model manager from settings, checking what can be checked at start-up."""

from __future__ import annotations

import time

from bragi.backends.registry import BackendRegistry
from bragi.config import Settings
from bragi.errors import BackendUnavailableError, ConfigError
from bragi.models.catalog import Catalog
from bragi.models.companions import local_companions
from bragi.models.manager import Clock, ModelManager
from bragi.models.prepare import check_model, choose_backend, validate_options
from bragi.models.resolve import companion_dirs, local_copy, plan_source
from bragi.models.served import ServedModel
from bragi.models.starter import default_aliases, starter_models
from bragi.models.store import ModelStore

__all__ = ["build_manager"]


def build_manager(
    settings: Settings,
    registry: BackendRegistry,
    *,
    store: ModelStore | None = None,
    catalog: Catalog | None = None,
    clock: Clock = time.monotonic,
) -> ModelManager:
    """A manager for the configured models (or the starter set).

    Raises ConfigError for what is wrong in the configuration itself: a reference that
    is neither a catalog name, a repo id nor a directory; an unknown backend; invalid
    options; a local model no backend recognises. A missing engine library only marks
    that model failed (with the install command), so the others still serve.
    """
    store = store or ModelStore(settings.models_dir, downloads=settings.allow_downloads)
    manager = ModelManager(settings, registry, store=store, catalog=catalog, clock=clock)
    configs = settings.models
    if configs is None:
        configs = starter_models(manager.catalog, manager.store, preload=settings.preload_starter)
    for alias, config in configs.items():
        source = plan_source(config.model, config.revision, manager.catalog)
        on_disk = local_copy(source, manager.store)
        backend = choose_backend(alias, config, source, registry, on_disk)
        model = ServedModel(
            alias,
            config,
            source,
            kind=backend.kind if backend is not None else None,
            max_concurrency=config.max_concurrency or settings.max_concurrency,
            max_queue=settings.max_queue if config.max_queue is None else config.max_queue,
        )
        if backend is not None:
            companions = companion_dirs(source, manager.store) if on_disk else {}
            options = validate_options(alias, backend, config, source, companions)
            try:
                registry.require_available(backend)
                if on_disk is not None:
                    check_model(backend, on_disk)
            except BackendUnavailableError as exc:
                model.unavailable(exc.message, "engine not installed")
            except ConfigError as exc:  # files the backend refuses (see ModelCheck)
                model.unavailable(exc.message)
            else:
                resolved = local_companions(backend, options, manager.store)
                if on_disk is not None and resolved is not None:
                    model.prepared(backend, on_disk, resolved)
                    manager.voices_of(model)  # read its voices now, before the event loop
        manager.add(alias, model)
    kinds = {model.alias: model.kind for model in manager.models()}
    aliases = settings.aliases
    if aliases is None:  # OpenAI's names come with the starter set; a config names its own
        aliases = default_aliases(kinds) if settings.models is None else {}
    for name, target in aliases.items():
        if name in kinds:
            raise ConfigError(f"invalid configuration: aliases.{name}: a model has that name")
        if target.model not in kinds:
            raise ConfigError(
                f"invalid configuration: aliases.{name}: no model {target.model!r} is configured"
            )
        manager.add_alias(name, target)
    return manager
