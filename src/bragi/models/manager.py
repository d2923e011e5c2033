"""The model manager: alias ─▶ loaded engine, for every protocol the server speaks.

Each configured model is a :class:`ServedModel`. A request goes through three small
parts, each readable on its own:

* :mod:`~bragi.models.admission`: the model's concurrency slots and queue (429 beyond);
* :mod:`~bragi.models.residency`: load on first use, keep-alive, LRU eviction at
  ``max_loaded_models``, all under one lock per model;
* :mod:`~bragi.models.downloads`: files fetched in the background, failed downloads
  retried, everything aborted on shutdown;
* :mod:`~bragi.models.installs`: missing engine environments installed in the
  background when ``install_engines`` is on, aborted on shutdown too.

It holds the engine through a :class:`Lease` (an async context manager) until it is
done, so a model in use is never unloaded. The clock is injected so tests never sleep.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import TracebackType

from bragi.backends.protocol import Device, Engine, ModelKind, TextToSpeech, Voice
from bragi.backends.registry import BackendRegistry
from bragi.config import ModelAlias, ModelConfig, Settings
from bragi.devices import resolve_device
from bragi.errors import BragiError, InvalidRequestError, ModelNotFoundError, ModelUnavailableError
from bragi.models.admission import Slot
from bragi.models.catalog import Catalog
from bragi.models.downloads import Downloads
from bragi.models.installs import EngineInstalls
from bragi.models.residency import LOAD_RETRY_SECONDS, FilesMissing, Residency, resident_memory
from bragi.models.served import ModelState, ServedModel
from bragi.models.store import ModelStore
from bragi.models.tasks import BackgroundTasks
from bragi.models.voice_lists import VoiceLists
from bragi.runners import LiveWorkers, RunnerConfig, create_engine

__all__ = [
    "KILL_GRACE",
    "LOAD_RETRY_SECONDS",
    "STOP_TIMEOUT",
    "Clock",
    "Lease",
    "ModelManager",
    "resident_memory",
    "runner_config",
]

log = logging.getLogger(__name__)
Clock = Callable[[], float]

#: Seconds ``stop()`` gives downloads and engines to end before it kills the workers
#: still running. With uvicorn's 10 s for requests, ``bragi serve`` exits within 25 s
#: of SIGTERM, inside Kubernetes' default grace of 30 s (deploy/kubernetes).
STOP_TIMEOUT = 15.0
#: After the kill, for the threads that waited on the workers to see them gone.
KILL_GRACE = 2.0

_KIND_ROUTE = {ModelKind.STT: "/v1/audio/transcriptions", ModelKind.TTS: "/v1/audio/speech"}
_KIND_NAME = {ModelKind.STT: "a speech-to-text", ModelKind.TTS: "a text-to-speech"}
# a diarization model serves response_format=diarized_json of the transcription route
_KIND_ROUTE[ModelKind.DIARIZATION] = "it through response_format=diarized_json"
_KIND_NAME[ModelKind.DIARIZATION] = "a speaker-diarization"


class Lease:
    """A request's hold on a model: its admission slot and its loaded engine. Releasing it
    (once; later calls do nothing) lets the next request in and the model unload."""

    def __init__(self, residency: Residency, model: ServedModel, engine: Engine, slot: Slot):
        self._residency = residency
        self._slot = slot
        self.model = model
        self.engine = engine
        self._released = False

    async def release(self) -> None:
        if not self._released:
            self._released = True
            self._slot.release()
            await self._residency.release(self.model)

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()


class ModelManager:
    def __init__(
        self,
        settings: Settings,
        registry: BackendRegistry,
        *,
        store: ModelStore | None = None,
        catalog: Catalog | None = None,
        clock: Clock = time.monotonic,
    ):
        self.settings = settings
        self.registry = registry
        self.catalog = catalog or Catalog.builtin()
        self.store = store or ModelStore(settings.models_dir)
        self.clock = clock
        self._models: dict[str, ServedModel] = {}
        self._aliases: dict[str, ModelAlias] = {}
        self._tasks = BackgroundTasks()
        self._workers = LiveWorkers()
        self._voice_lists = VoiceLists()
        self._device: Device | None = None if settings.device == "auto" else settings.device
        self._stopping = False
        #: models asked to preload whose preload has not ended (for readiness)
        self.preloading: set[str] = set()
        self.downloads = Downloads(
            registry, self.store, self._tasks, on_files=self._voice_lists.warm
        )
        self.installs = EngineInstalls(
            settings.data_dir, self._tasks, enabled=settings.install_engines
        )
        self.residency = Residency(
            self.models,
            self._load_engine,
            clock=clock,
            max_loaded_models=settings.max_loaded_models,
            keep_alive=settings.keep_alive,
            on_files_missing=self.downloads.prepare_later,
        )

    # --- the configured models ------------------------------------------------

    def add(self, alias: str, model: ServedModel) -> None:
        self._models[alias] = model

    def models(self) -> list[ServedModel]:
        return list(self._models.values())

    def __contains__(self, alias: object) -> bool:
        return alias in self._models or alias in self.aliases()

    def add_alias(self, name: str, alias: ModelAlias) -> None:
        """Another name for a configured model; requests by that name share its engine."""
        self._aliases[name] = alias

    def aliases(self) -> dict[str, ModelAlias]:
        return {n: a for n, a in self._aliases.items() if a.model in self._models}

    def diarizes(self, name: str) -> bool:
        """Whether requests by ``name`` label speakers in every format (a diarizing alias)."""
        alias = self._aliases.get(name)
        return alias is not None and alias.diarize and name not in self._models

    def diarizer(self) -> ServedModel | None:
        """The diarization model (the first configured), if any."""
        return next((m for m in self.models() if m.kind is ModelKind.DIARIZATION), None)

    def get(self, alias: str) -> ServedModel:
        if alias not in self._models and alias in self._aliases:
            alias = self._aliases[alias].model
        try:
            return self._models[alias]
        except KeyError:
            raise ModelNotFoundError(
                f"The model `{alias}` does not exist or you do not have access to it.",
                param="model",
            ) from None

    @property
    def device(self) -> Device:
        if self._device is None:
            self._device = resolve_device(self.settings.device)
        return self._device

    def voices_of(self, model: ServedModel) -> list[Voice] | None:
        """A TTS model's voices: from the loaded engine, else from its files (read once,
        in the thread that fetched them, and kept while its directory is unchanged)."""
        if model.kind is not ModelKind.TTS:
            return None
        engine = model.engine
        if isinstance(engine, TextToSpeech):
            return list(engine.voices())
        if model.backend is None or model.model_dir is None:
            return None
        return self._voice_lists.voices(model.backend, model.model_dir, model.options)

    # --- start and stop -------------------------------------------------------

    async def start(self, *, reap_interval: float = 1.0, retry_fetches: bool = True) -> None:
        """Fetch every model in the background, and preload those asked for. A failed
        download is tried again with backoff (15 s doubling to 10 min) while the server runs."""
        self.downloads.retry = retry_fetches
        self.preloading = {m.alias for m in self.models() if m.config.preload}
        for model in self.models():
            self._tasks.spawn(self._prepare(model), f"prepare {model.alias}")
        if reap_interval > 0:
            self._tasks.spawn(self._reap_forever(reap_interval), "reap idle models")

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Abort downloads, end background work and close every engine in parallel; what
        is still running after ``timeout`` seconds (a worker stuck in a step) is killed."""
        self._stopping = True
        self.downloads.abort()
        self.installs.abort()
        pending: set[asyncio.Future[None]] = set(self._tasks.cancel_all())
        pending.add(asyncio.ensure_future(self.residency.close_all()))
        _, pending = await asyncio.wait(pending, timeout=timeout)
        if pending:
            killed = self._workers.kill_all()
            log.warning(
                "shutdown: still busy after %.0f s; killed %d worker process(es)", timeout, killed
            )
            _, pending = await asyncio.wait(pending, timeout=KILL_GRACE)
        for left in pending:
            left.cancel()

    async def _prepare(self, model: ServedModel) -> None:
        """Fetch the model if its files are missing, then preload it if asked; each model
        on its own, so no load waits for another model's download."""
        if model.state is ModelState.DOWNLOADING:
            await self.downloads.prepare(model)
        await self.installs.install(model, self.device)
        self._preload_later(model)

    def _preload_later(self, model: ServedModel) -> None:
        if model.config.preload and model.state is ModelState.AVAILABLE:
            self._tasks.spawn(self._preload(model), f"preload {model.alias}")
        else:  # nothing to preload (its download failed): readiness need not wait
            self.preloading.discard(model.alias)

    async def _preload(self, model: ServedModel) -> None:
        try:
            await self.residency.load(model)
        except BragiError as exc:
            log.error("preloading %s failed: %s", model.alias, exc.message)
        finally:
            self.preloading.discard(model.alias)

    async def _reap_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.residency.reap()
            except Exception:  # keep-alive must outlive any one failure
                log.exception("reaping idle models failed")

    async def prepare(self, model: ServedModel) -> None:
        """Fetch the model's files and pick its backend; failures mark it failed."""
        await self.downloads.prepare(model)

    async def reap(self) -> list[str]:
        """Unload models whose keep-alive has run out; returns their aliases."""
        return await self.residency.reap()

    # --- using a model ----------------------------------------------------------

    async def admit(self, alias: str, kind: ModelKind) -> Slot:
        """A place among ``alias``'s running requests (after queueing; 429 when the queue
        is full), checked before anything costly, such as reading an upload, is done."""
        model = self.get(alias)
        self._check_kind(model, kind)
        if self._stopping:
            raise ModelUnavailableError("The server is shutting down; retry on another.")
        self.residency.check_serviceable(model)
        return await model.admission.enter()

    async def acquire(self, alias: str, kind: ModelKind, *, slot: Slot | None = None) -> Lease:
        """Admit a request to ``alias`` (unless it holds a ``slot`` from :meth:`admit`),
        load the model if needed, and lease its engine."""
        model = self.get(alias)
        slot = slot or await self.admit(alias, kind)
        try:
            engine = await self.residency.lease(model)
        except BaseException:
            slot.release()
            raise
        lease = Lease(self.residency, model, engine, slot)
        try:
            self._check_kind(model, kind)  # a detected backend's kind is known once loaded
        except BaseException:
            await lease.release()
            raise
        return lease

    async def load(self, alias: str) -> ServedModel:
        """Load ``alias`` now; a model whose download failed is fetched again first."""
        model = self.get(alias)
        if model.state is ModelState.FAILED and model.load_failed_at is None:
            await self.downloads.prepare(model)
            await self.installs.install(model, self.device)
        self.residency.check_serviceable(model, retry_now=True)
        await self.residency.load(model)
        return model

    async def unload(self, alias: str) -> bool:
        """Unload ``alias`` now unless it is in use; returns whether it was unloaded."""
        return await self.residency.unload(self.get(alias))

    def _check_kind(self, model: ServedModel, kind: ModelKind) -> None:
        if model.kind is not None and model.kind is not kind:
            raise InvalidRequestError(
                f"Model `{model.alias}` is {_KIND_NAME[model.kind]} model; "
                f"use {_KIND_ROUTE[model.kind]}.",
                param="model",
                code="model_kind_mismatch",
            )

    def _load_engine(self, model: ServedModel) -> Engine:
        """Make the model's engine (blocking: runs in a worker thread)."""
        backend, model_dir, options = model.backend, model.model_dir, model.options
        assert backend is not None and model_dir is not None and options is not None
        if not model_dir.is_dir():
            raise FilesMissing(model_dir)
        runner = runner_config(model.alias, model.config, self.settings, self._workers)
        return create_engine(backend, model_dir, self.device, options, runner)


def runner_config(
    alias: str, config: ModelConfig, settings: Settings, workers: LiveWorkers | None = None
) -> RunnerConfig:
    """How ``alias``'s engine runs, from its model config and the settings."""
    return RunnerConfig(
        runner=config.runner,
        label=alias,
        timeout=config.worker_timeout,
        load_timeout=config.worker_load_timeout,
        envs_dir=settings.data_dir / "envs",
        workers=workers,
    )
