"""Residency: which engines are in memory, and the only code that loads or closes them.

Loading, unloading, eviction and reaping of one model all happen under that model's
lock, so they never overlap: a request that arrives while the model closes waits for
the close, then loads a fresh copy. Whether a model is idle is checked under the lock
right before it is unloaded, so an engine leased meanwhile is never closed under its
request. Models loading or closing count toward ``max_loaded_models`` as much as
loaded ones: the limit is about memory, and they hold it. When the limit is reached,
the least recently used idle model is evicted; if none is idle, the request gets 503.

Engine loads and closes run in worker threads, shielded from cancellation: a client
that leaves mid-load does not leave a loaded engine nobody tracks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from anyio import CancelScope, to_thread

from bragi.backends.protocol import Engine
from bragi.errors import BragiError, ConfigError, ModelUnavailableError
from bragi.memory import release_freed_memory
from bragi.models.installs import RETRY_AFTER_SECONDS
from bragi.models.served import RESIDENT, ModelState, ServedModel

__all__ = ["LOAD_RETRY_SECONDS", "FilesMissing", "Residency", "resident_memory"]

log = logging.getLogger("bragi.models.manager")

#: A model that failed to load is tried again by the first request after this many seconds.
LOAD_RETRY_SECONDS = 30.0

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
T = TypeVar("T")


def resident_memory() -> int | None:
    """This process's resident set size in bytes (Linux), else None."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


async def to_the_end(work: Callable[[], T]) -> T:
    """``work()`` in a worker thread, awaited to its end even if this task is cancelled
    meanwhile: what it did (an engine loaded, an engine closed) must reach the model's
    state. The cancellation is requested again once it has ended, so it is raised at
    the caller's next ``await``, after the caller has recorded the result."""
    future = asyncio.ensure_future(to_thread.run_sync(work))
    task = asyncio.current_task()
    cancelled = False
    with CancelScope(shield=True):  # AnyIO's cancellation waits for the scope's end
        while True:
            try:
                result = await asyncio.shield(future)
                break
            except asyncio.CancelledError:
                if future.cancelled() or task is None:  # the loop itself is closing
                    raise
                task.uncancel()  # asyncio's: remembered, and requested again below
                cancelled = True
    if cancelled and task is not None:
        task.cancel()
    return result


class FilesMissing(Exception):
    """The model's directory is gone (deleted under a served model)."""


class Residency:
    """Loads, leases, unloads, evicts and reaps engines; one lock per model."""

    def __init__(
        self,
        models: Callable[[], Iterable[ServedModel]],
        load_engine: Callable[[ServedModel], Engine],
        *,
        clock: Callable[[], float],
        max_loaded_models: int,
        keep_alive: float,
        on_files_missing: Callable[[ServedModel], None],
    ):
        self._models = models
        self._load_engine = load_engine  # blocking; raises FilesMissing
        self._clock = clock
        self.max_loaded_models = max_loaded_models
        self.keep_alive = keep_alive
        self._on_files_missing = on_files_missing
        self._changed = asyncio.Event()  # set (and replaced) whenever an engine closes

    # --- serving ------------------------------------------------------------

    def check_serviceable(self, model: ServedModel, *, retry_now: bool = False) -> None:
        """503 unless the model can be loaded now. A failed load is tried again after
        LOAD_RETRY_SECONDS (or at once when ``retry_now``)."""
        failed_at = model.load_failed_at
        if model.state is ModelState.FAILED and failed_at is not None:
            wait = LOAD_RETRY_SECONDS - (self._clock() - failed_at)
            if retry_now or wait <= 0:
                model.retry_load()
            else:
                raise ModelUnavailableError(
                    f"Model `{model.alias}` is unavailable: {model.error} (the next request "
                    f"after {wait:.0f} s tries again, or POST /admin/models/{model.alias}/load)"
                )
        if model.state is ModelState.FAILED:
            raise ModelUnavailableError(f"Model `{model.alias}` is unavailable: {model.error}")
        if model.state is ModelState.INSTALLING:
            raise ModelUnavailableError(
                f"Model `{model.alias}`'s engine is being installed ({model.progress_text()}); "
                "retry when /health/ready reports it.",
                code="engine_installing",
                retry_after=RETRY_AFTER_SECONDS,
            )
        if model.state is ModelState.DOWNLOADING:
            raise ModelUnavailableError(
                f"Model `{model.alias}` is still being downloaded ({model.progress_text()}); "
                "retry when /health/ready reports it."
            )

    async def lease(self, model: ServedModel) -> Engine:
        """The model's engine, loaded if need be, counted as in use until :meth:`release`."""
        if model.state is ModelState.LOADED:  # no await between this check and the lease
            model.leased(self._clock())
            assert model.engine is not None
            return model.engine
        async with model.lock:
            engine = await self._load_locked(model)
            # A cancellation that came during the load is raised here, before the lease:
            # a request that is gone must not hold one (the lock keeps the model loaded).
            await asyncio.sleep(0)
            model.leased(self._clock())
            return engine

    async def load(self, model: ServedModel) -> Engine:
        """Load the model now (if it is not loaded), without leasing it."""
        async with model.lock:
            return await self._load_locked(model)

    async def release(self, model: ServedModel) -> None:
        model.returned(self._clock())
        if model.in_use == 0 and model.keep_alive(self.keep_alive) == 0:
            # Shielded: a request cancelled because its client left releases its lease in
            # a cancelled scope, and the engine must still be closed, not just dropped.
            with CancelScope(shield=True):
                await self.unload(model)

    # --- unloading ----------------------------------------------------------

    async def unload(self, model: ServedModel, *, expired_at: float | None = None) -> bool:
        """Close the model's engine if it is loaded and idle (and, given ``expired_at``,
        past its keep-alive then); returns whether it did."""
        async with model.lock:
            if model.state is not ModelState.LOADED or model.in_use:
                return False
            if expired_at is not None and not model.expired(expired_at, self.keep_alive):
                return False
            await self._close_locked(model)
            return True

    async def reap(self) -> list[str]:
        """Unload models whose keep-alive has run out; returns their aliases."""
        now = self._clock()
        reaped = []
        for model in self._models():
            if model.state is not ModelState.LOADED or model.in_use:
                continue
            if not model.expired(now, self.keep_alive):
                continue
            try:
                if await self.unload(model, expired_at=now):
                    reaped.append(model.alias)
            except Exception:  # one engine failing to close must not stop the others
                log.exception("unloading %s failed", model.alias)
        return reaped

    async def close_all(self) -> None:
        """Close every engine, in use or not, in parallel (shutdown)."""
        resident = [model for model in self._models() if model.state in RESIDENT]
        results = await asyncio.gather(
            *(self._force_close(model) for model in resident), return_exceptions=True
        )
        for model, result in zip(resident, results, strict=True):
            if isinstance(result, Exception):
                log.error("closing %s failed: %s", model.alias, result)

    async def _force_close(self, model: ServedModel) -> None:
        async with model.lock:  # a load in flight ends first
            if model.state is ModelState.LOADED:
                await self._close_locked(model, force=True)

    # --- under the model's lock ---------------------------------------------

    async def _load_locked(self, model: ServedModel) -> Engine:
        if model.state is ModelState.LOADED:  # someone else loaded it while we waited
            assert model.engine is not None
            return model.engine
        self.check_serviceable(model)
        await self._make_room(model)  # returns with the model LOADING
        started = time.perf_counter()
        try:
            engine, grown = await to_the_end(lambda: self._measured_load(model))
        except FilesMissing:
            model.files_missing()
            log.warning(
                "the files of %s are gone from %s; fetching them again",
                model.alias,
                model.model_dir,
            )
            self._on_files_missing(model)
            raise ModelUnavailableError(
                f"Model `{model.alias}`'s files are gone; they are being fetched again. "
                "Retry when /health/ready reports it."
            ) from None
        except (BragiError, ConfigError) as exc:
            model.load_failed(exc.message, self._clock())
            raise ModelUnavailableError(
                f"Model `{model.alias}` failed to load: {exc.message}"
            ) from exc
        except Exception as exc:  # an engine library failing in its own way
            log.exception("loading %s failed", model.alias)
            model.load_failed(f"{type(exc).__name__}: {exc}", self._clock())
            raise ModelUnavailableError(
                f"Model `{model.alias}` failed to load: {model.error}"
            ) from exc
        model.loaded(engine, self._clock(), grown)
        log.info("loaded %s in %.2f s", model.alias, time.perf_counter() - started)
        return engine

    def _measured_load(self, model: ServedModel) -> tuple[Engine, int | None]:
        before = resident_memory()
        engine = self._load_engine(model)
        after = resident_memory()
        grown = after - before if after and before else None
        return engine, grown if grown and grown > 0 else None

    async def _make_room(self, incoming: ServedModel) -> None:
        """Reserve a place for ``incoming`` (it becomes LOADING), evicting the least
        recently used idle model while the limit is reached."""
        limit = self.max_loaded_models
        while True:
            others = [m for m in self._models() if m.state in RESIDENT and m is not incoming]
            if limit <= 0 or len(others) < limit:
                incoming.loading()  # no await since the count: the place is ours
                return
            idle = [m for m in others if m.state is ModelState.LOADED and not m.in_use]
            if idle:
                victim = min(idle, key=lambda m: m.last_used)
                log.info(
                    "evicting %s (least recently used) to load %s", victim.alias, incoming.alias
                )
                await self.unload(victim)  # under its lock, idleness checked again
                continue
            if any(m.state is ModelState.UNLOADING for m in others):
                await self._next_close()  # a place is about to be freed
                continue
            raise ModelUnavailableError(
                f"All {limit} loaded models are busy; `{incoming.alias}` cannot be loaded "
                "now. Retry shortly or raise max_loaded_models."
            )

    async def _close_locked(self, model: ServedModel, *, force: bool = False) -> None:
        engine = model.unloading(force=force)
        try:
            await to_the_end(engine.close)
        except Exception:  # the engine is dropped all the same
            log.exception("closing %s failed", model.alias)
        finally:
            del engine
            model.unloaded()
            self._changed.set()
            self._changed = asyncio.Event()
        # the engine's memory back to the system, not only to malloc's arenas
        await to_thread.run_sync(release_freed_memory)
        log.info("unloaded %s", model.alias)

    async def _next_close(self) -> None:
        await self._changed.wait()
