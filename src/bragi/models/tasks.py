"""The manager's background work (downloads, retries, preloads, the reaper), never lost.

A background task that fails is logged with its traceback when it ends, instead of
"Task exception was never retrieved" at garbage collection, if ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["BackgroundTasks"]

log = logging.getLogger("bragi.models.manager")


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("background task %r failed", task.get_name(), exc_info=error)

    def cancel_all(self) -> list[asyncio.Task[None]]:
        """Cancel every task; returns them, to be awaited (each ends once the thread it
        waits on, if any, returns)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        return tasks
