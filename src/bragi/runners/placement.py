"""Where an engine runs: in the server's process, or in a worker process.

``create_engine`` is the one way the model manager makes an engine; both runners
return an object implementing the same protocols. A worker runs from the backend's
own environment when the backend is an :class:`~bragi.backends.protocol.IsolatedBackend`
(torch engines), else from the server's own interpreter (any backend can be forced
into a worker with ``runner: worker``).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Literal

from bragi.backends.protocol import (
    Backend,
    BackendOptions,
    Device,
    Engine,
    IsolatedBackend,
    ModelKind,
)
from bragi.backends.registry import ENTRY_POINT_GROUP, load_engine
from bragi.errors import BackendUnavailableError, ConfigError
from bragi.runners.environment import worker_environment
from bragi.runners.envs import EngineEnvs, environment_of
from bragi.runners.process import LiveWorkers, WorkerSpec
from bragi.runners.proxy import start_worker

__all__ = ["RunnerConfig", "backend_reference", "create_engine", "runs_in_worker"]

log = logging.getLogger(__name__)
Runner = Literal["auto", "process", "worker"]


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """How one model's engine runs (the manager makes one from the model's config)."""

    runner: Runner = "auto"
    label: str = "engine"  # the model alias, for log lines and errors
    timeout: float = 120.0
    load_timeout: float = 600.0
    envs_dir: Path | None = None  # ``<data_dir>/envs``
    workers: LiveWorkers | None = None  # where a worker started for it is tracked


def runs_in_worker(backend: Backend, runner: Runner) -> bool:
    if runner == "auto":
        return isinstance(backend, IsolatedBackend)
    return runner == "worker"


def backend_reference(backend: Backend) -> str | None:
    """How the worker finds ``backend``: None for its entry point (looked up by name in
    the worker's environment), else the ``module:attr`` that holds it."""
    for entry in entry_points(group=ENTRY_POINT_GROUP, name=backend.name):
        try:
            if entry.load() is backend:
                return None
        except Exception:  # a broken plugin is the registry's to report
            log.debug("entry point %s does not load", entry.value, exc_info=True)
    module = sys.modules.get(type(backend).__module__)
    for attribute, value in vars(module).items() if module is not None else ():
        if value is backend:
            return f"{module.__name__}:{attribute}"  # type: ignore[union-attr]
    raise BackendUnavailableError(
        f"the {backend.name} backend cannot run in a worker: it is neither a "
        f"{ENTRY_POINT_GROUP} entry point nor a module-level object the worker can import"
    )


def _server_pythonpath() -> str:
    """The server's import path beyond its own installation (tests, source checkouts)."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    extra = []
    for entry in sys.path:
        real = os.path.realpath(entry) if entry else ""
        if real and os.path.isdir(real) and not any(real.startswith(p) for p in prefixes):
            extra.append(entry)
    inherited = os.environ.get("PYTHONPATH")
    return os.pathsep.join([*extra, *([inherited] if inherited else [])])


def _interpreter(
    backend: Backend, config: RunnerConfig, device: Device
) -> tuple[str, dict[str, str], Path | None]:
    """The worker's interpreter, its environment variables, and the engine environment it
    runs from (held while it runs, so it is not replaced or removed under it)."""
    environment = worker_environment(os.environ)
    if not isinstance(backend, IsolatedBackend):
        environment["PYTHONPATH"] = _server_pythonpath()
        return sys.executable, environment, None
    if config.envs_dir is None:
        raise BackendUnavailableError(f"the {backend.name} engine needs an environments directory")
    envs, name = EngineEnvs(config.envs_dir), environment_of(backend)
    python = envs.require(name)
    manifest = envs.manifest(name)
    if manifest is not None and manifest.device != device:
        log.warning(
            "the %s environment was installed for %s, but %s runs on %s: "
            "run `bragi backend install %s --device %s`",
            name,
            manifest.device,
            config.label,
            device,
            name,
            device,
        )
    for leak in ("PYTHONPATH", "PYTHONHOME"):  # the environment is the engine's alone
        environment.pop(leak, None)
    environment["PYTHONNOUSERSITE"] = "1"
    return str(python), environment, envs.path(backend.name)


def create_engine(
    backend: Backend,
    model_dir: Path,
    device: Device,
    options: BackendOptions,
    config: RunnerConfig | None = None,
) -> Engine:
    """Load ``backend``'s engine for ``model_dir``, in this process or in a worker."""
    config = config or RunnerConfig()
    if not runs_in_worker(backend, config.runner):
        return load_engine(backend, model_dir, device, options)
    if backend.kind is ModelKind.DIARIZATION:  # the worker protocol carries STT and TTS only
        raise ConfigError(
            f"{config.label}: a diarization model runs in the server process; "
            "remove `runner: worker`"
        )
    python, environment, holds = _interpreter(backend, config, device)
    reference = backend_reference(backend)
    spec = WorkerSpec(
        label=config.label,
        python=python,
        backend=backend.name,
        reference=reference,
        model_dir=model_dir,
        device=device,
        options=options.model_dump(mode="json"),
        environment=environment,
        timeout=config.timeout,
        load_timeout=config.load_timeout,
        holds=holds,
    )
    return start_worker(spec, backend.kind, config.workers)
