"""The model manager: alias ─▶ loaded engine.

Each configured model is a :class:`ServedModel`. Its files are fetched in the
background at start-up; it is loaded on first use (or at start-up when ``preload``)
under a per-model lock, so concurrent first requests load it once; it is used through
a ref-counted :class:`Lease`, so a model in use is never unloaded; it is unloaded when
its keep-alive runs out, or evicted least-recently-used when ``max_loaded_models`` is
reached. Each model admits ``max_concurrency`` requests at once and queues at most
``max_queue`` more; beyond that, 429 with ``Retry-After``. The clock is injected so
tests never sleep.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from types import TracebackType

from anyio import CancelScope, to_thread

from bragi.backends.protocol import (
    Backend,
    Device,
    Engine,
    ModelKind,
    TextToSpeech,
    Voice,
    VoiceListing,
)
from bragi.backends.registry import BackendRegistry
from bragi.config import Settings
from bragi.devices import resolve_device
from bragi.errors import (
    BragiError,
    InvalidRequestError,
    ModelFetchError,
    ModelNotFoundError,
    ModelUnavailableError,
    RateLimitError,
)
from bragi.memory import release_freed_memory
from bragi.models.catalog import Catalog
from bragi.models.prepare import prepare_model
from bragi.models.served import ModelState, ServedModel
from bragi.models.store import DownloadProgress, ModelStore
from bragi.runners import RunnerConfig, create_engine

__all__ = ["Lease", "ModelManager", "resident_memory"]

log = logging.getLogger(__name__)
#: A model that failed to load is tried again by the first request after this many seconds.
LOAD_RETRY_SECONDS = 30.0
Clock = Callable[[], float]

_RETRY_FIRST, _RETRY_MAX = 15.0, 600.0
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_KIND_ROUTE = {ModelKind.STT: "/v1/audio/transcriptions", ModelKind.TTS: "/v1/audio/speech"}
_KIND_NAME = {ModelKind.STT: "a speech-to-text", ModelKind.TTS: "a text-to-speech"}


def resident_memory() -> int | None:
    """This process's resident set size in bytes (Linux), else None."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


class Lease:
    """A request's hold on a loaded engine; releasing it lets the model be unloaded."""

    def __init__(self, manager: ModelManager, model: ServedModel, engine: Engine):
        self._manager = manager
        self.model = model
        self.engine = engine
        self._released = False

    async def release(self) -> None:
        if not self._released:
            self._released = True
            await self._manager._release(self.model)

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
        self._tasks: set[asyncio.Task[None]] = set()
        self.retry_fetches = False
        self.retry_first_delay = _RETRY_FIRST
        self._device = None if settings.device == "auto" else settings.device

    # --- configuration ------------------------------------------------------

    def add(self, alias: str, model: ServedModel) -> None:
        self._models[alias] = model

    def models(self) -> list[ServedModel]:
        return list(self._models.values())

    def get(self, alias: str) -> ServedModel:
        try:
            return self._models[alias]
        except KeyError:
            raise ModelNotFoundError(
                f"The model `{alias}` does not exist or you do not have access to it.",
                param="model",
            ) from None

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self.settings.device)
        return self._device

    def voices_of(self, model: ServedModel) -> list[Voice] | None:
        """A TTS model's voices: from the loaded engine, else from its files."""
        if model.kind is not ModelKind.TTS:
            return None
        if isinstance(model.engine, TextToSpeech):
            return list(model.engine.voices())
        if isinstance(model.backend, VoiceListing) and model.model_dir is not None:
            return list(model.backend.voices_in(model.model_dir, model.options))
        return None

    def is_ready(self) -> bool:
        return all(m.state in (ModelState.AVAILABLE, ModelState.LOADED) for m in self.models())

    # --- background work ----------------------------------------------------

    def _spawn(self, work: asyncio.Future[None] | asyncio.Task[None] | object) -> None:
        assert asyncio.iscoroutine(work)
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, *, reap_interval: float = 1.0, retry_fetches: bool = True) -> None:
        """Fetch every model in the background, then preload those asked for. A failed
        download is tried again with backoff (15 s doubling to 10 min) while the server runs."""
        self.retry_fetches = retry_fetches
        self._spawn(self._prepare_all())
        if reap_interval > 0:
            self._spawn(self._reap_forever(reap_interval))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for model in self.models():
            if model.engine is not None:
                await self._unload(model)

    async def _prepare_all(self) -> None:
        for model in self.models():
            if model.state is ModelState.DOWNLOADING:
                await self.prepare(model)
        for model in self.models():
            if model.config.preload and model.state is ModelState.AVAILABLE:
                try:
                    await self._ensure_loaded(model)
                except BragiError as exc:
                    log.error("preloading %s failed: %s", model.alias, exc.message)

    async def prepare(self, model: ServedModel) -> None:
        """Fetch the model's files and pick its backend; failures mark it failed."""

        def on_progress(progress: DownloadProgress) -> None:
            model.progress = progress

        model.state = ModelState.DOWNLOADING
        try:
            prepared = await to_thread.run_sync(
                prepare_model, model, self.registry, self.store, on_progress
            )
        except ModelFetchError as exc:
            # Hub unreachable, not cached yet, disk full: worth trying again later.
            model.fail(exc.message)
            delay = min(_RETRY_MAX, self.retry_first_delay * 2**model.fetch_failures)
            model.fetch_failures += 1
            log.error(
                "model %s is unavailable: %s (retrying in %.0f s)", model.alias, exc.message, delay
            )
            if self.retry_fetches:
                self._spawn(self._retry_prepare(model, delay))
            return
        except BragiError as exc:
            model.fail(exc.message)
            log.error("model %s is unavailable: %s", model.alias, exc.message)
            return
        model.fetch_failures = 0
        model.set_prepared(*prepared)
        log.info("model %s ready (%s, %s)", model.alias, model.backend_name, model.model_dir)

    async def _retry_prepare(self, model: ServedModel, delay: float) -> None:
        await asyncio.sleep(delay)
        if model.state is ModelState.FAILED:
            await self.prepare(model)

    async def _reap_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.reap()

    async def reap(self) -> list[str]:
        """Unload models whose keep-alive has run out; returns their aliases."""
        now = self.clock()
        expired = [
            m
            for m in self.models()
            if m.engine is not None and m.in_use == 0 and m.expired(now, self.settings.keep_alive)
        ]
        for model in expired:
            await self._unload(model)
        return [m.alias for m in expired]

    # --- using a model -------------------------------------------------------

    async def acquire(self, alias: str, kind: ModelKind) -> Lease:
        """Admit a request to ``alias``, load it if needed, and lease its engine."""
        model = self.get(alias)
        self._check_kind(model, kind)
        self._check_serviceable(model)
        limit = model.config.max_concurrency or self.settings.max_concurrency
        queue = (
            self.settings.max_queue if model.config.max_queue is None else model.config.max_queue
        )
        if model.running >= limit and model.waiting >= queue:
            raise RateLimitError(
                f"Model `{alias}` is busy: {model.running} requests running and "
                f"{model.waiting} waiting. Retry shortly.",
                retry_after=model.retry_after_estimate(),
            )
        model.waiting += 1
        try:
            await model.slots(limit).acquire()
        finally:
            model.waiting -= 1
        model.running += 1
        try:
            engine = await self._ensure_loaded(model)
            self._check_kind(model, kind)
        except BaseException:
            model.running -= 1
            model.slots(limit).release()
            raise
        model.in_use += 1
        model.last_used = self.clock()
        return Lease(self, model, engine)

    async def _release(self, model: ServedModel) -> None:
        model.in_use -= 1
        model.running -= 1
        model.last_used = self.clock()
        model.requests_served += 1
        model.slots(model.config.max_concurrency or self.settings.max_concurrency).release()
        if model.in_use == 0 and model.keep_alive(self.settings.keep_alive) == 0:
            # Shielded: a request cancelled because its client left releases its lease in
            # a cancelled scope, and the engine must still be closed, not just dropped.
            with CancelScope(shield=True):
                await self._unload(model)

    def _check_kind(self, model: ServedModel, kind: ModelKind) -> None:
        if model.kind is not None and model.kind is not kind:
            raise InvalidRequestError(
                f"Model `{model.alias}` is {_KIND_NAME[model.kind]} model; "
                f"use {_KIND_ROUTE[model.kind]}.",
                param="model",
                code="model_kind_mismatch",
            )

    def _check_serviceable(self, model: ServedModel, *, retry_now: bool = False) -> None:
        failed_at = model.load_failed_at
        if model.state is ModelState.FAILED and failed_at is not None:
            wait = LOAD_RETRY_SECONDS - (self.clock() - failed_at)
            if retry_now or wait <= 0:
                model.retry_load()
            else:
                raise ModelUnavailableError(
                    f"Model `{model.alias}` is unavailable: {model.error} (the next request "
                    f"after {wait:.0f} s tries again, or POST /admin/models/{model.alias}/load)"
                )
        if model.state is ModelState.FAILED:
            raise ModelUnavailableError(f"Model `{model.alias}` is unavailable: {model.error}")
        if model.state is ModelState.DOWNLOADING:
            raise ModelUnavailableError(
                f"Model `{model.alias}` is still being downloaded ({model.progress_text()}); "
                "retry when /health/ready reports it."
            )

    async def load(self, alias: str) -> ServedModel:
        model = self.get(alias)
        self._check_serviceable(model, retry_now=True)
        await self._ensure_loaded(model)
        return model

    async def unload(self, alias: str) -> bool:
        """Unload ``alias`` now unless it is in use; returns whether it was unloaded."""
        model = self.get(alias)
        if model.engine is None or model.in_use:
            return False
        await self._unload(model)
        return True

    async def _ensure_loaded(self, model: ServedModel) -> Engine:
        if model.engine is not None:
            return model.engine
        async with model.load_lock:
            if model.engine is not None:  # someone else loaded it while we waited
                return model.engine
            self._check_serviceable(model)
            await self._make_room(model)
            backend = model.backend
            assert backend is not None and model.model_dir is not None
            model.state = ModelState.LOADING
            started = time.perf_counter()
            rss_before = resident_memory()
            try:
                engine = await to_thread.run_sync(self._load_engine, model, backend)
            except BragiError as exc:
                model.fail_load(exc.message, self.clock())
                raise ModelUnavailableError(
                    f"Model `{model.alias}` failed to load: {exc.message}"
                ) from exc
            except Exception as exc:  # an engine library failing in its own way
                log.exception("loading %s failed", model.alias)
                model.fail_load(f"{type(exc).__name__}: {exc}", self.clock())
                raise ModelUnavailableError(
                    f"Model `{model.alias}` failed to load: {model.error}"
                ) from exc
            rss_after = resident_memory()
            grown = rss_after - rss_before if rss_after and rss_before else None
            model.set_loaded(engine, self.clock(), grown if grown and grown > 0 else None)
            log.info("loaded %s in %.2f s", model.alias, time.perf_counter() - started)
            return engine

    def _load_engine(self, model: ServedModel, backend: Backend) -> Engine:
        assert model.model_dir is not None and model.options is not None
        device: Device = "cpu" if self.device == "cpu" else "cuda"
        runner = RunnerConfig.for_model(model.alias, model.config, self.settings)
        return create_engine(backend, model.model_dir, device, model.options, runner)

    async def _make_room(self, incoming: ServedModel) -> None:
        limit = self.settings.max_loaded_models
        if limit <= 0:
            return
        loaded = [m for m in self.models() if m.engine is not None and m is not incoming]
        while len(loaded) >= limit:
            idle = sorted((m for m in loaded if m.in_use == 0), key=lambda m: m.last_used)
            if not idle:
                raise ModelUnavailableError(
                    f"All {limit} loaded models are busy; `{incoming.alias}` cannot be loaded "
                    "now. Retry shortly or raise max_loaded_models."
                )
            victim = idle[0]
            log.info("evicting %s (least recently used) to load %s", victim.alias, incoming.alias)
            await self._unload(victim)
            loaded.remove(victim)

    async def _unload(self, model: ServedModel) -> None:
        engine = model.engine
        if engine is None:
            return
        model.set_unloaded()
        await to_thread.run_sync(engine.close)
        del engine
        await to_thread.run_sync(release_freed_memory)  # to the system, not just to malloc
        log.info("unloaded %s", model.alias)
