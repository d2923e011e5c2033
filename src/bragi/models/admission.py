"""Admission: how many requests one model runs at once, how many wait, and who is refused.

Each model admits ``limit`` requests at once and queues at most ``queue`` more; the next
one gets 429 with a ``Retry-After``. Admission is the first thing a request does, so a
refused request costs nothing: no upload read, no model loaded.
"""

from __future__ import annotations

import asyncio

from bragi.errors import RateLimitError

__all__ = ["Admission", "Slot"]


class Slot:
    """A request's place among a model's running requests; ``release()`` gives it back
    (once: later calls do nothing)."""

    def __init__(self, admission: Admission):
        self._admission = admission
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._leave()


class Admission:
    """One model's door: ``limit`` requests run, ``queue`` more wait, the rest get 429."""

    def __init__(self, alias: str, limit: int, queue: int):
        self.alias = alias
        self.limit = limit
        self.queue = queue
        self._slots = asyncio.Semaphore(limit)
        self._running = 0
        self._waiting = 0

    @property
    def running(self) -> int:
        """Requests admitted past the gate (loading the model or using it)."""
        return self._running

    @property
    def waiting(self) -> int:
        """Requests queued at the gate."""
        return self._waiting

    def retry_after(self) -> int:
        # Without timing data, one second per queued request is an honest lower bound.
        return max(1, self._waiting)

    def check(self) -> None:
        """Refuse now (429) when every slot is taken and the queue is full."""
        if self._running >= self.limit and self._waiting >= self.queue:
            raise RateLimitError(
                f"Model `{self.alias}` is busy: {self._running} requests running and "
                f"{self._waiting} waiting. Retry shortly.",
                retry_after=self.retry_after(),
            )

    async def enter(self) -> Slot:
        """A slot, after waiting in the queue if need be; 429 if the queue is full."""
        self.check()
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._running += 1
        return Slot(self)

    def _leave(self) -> None:
        self._running -= 1
        self._slots.release()
