"""Short clips of concurrent requests decoded together, as one batch.

A request that finds the engine idle runs at once, alone, as it would without batching;
requests that arrive while a batch runs wait, and the next batch takes all of them that
can share a decode (the same ``key``: task, language, prompt, ...), up to ``max_batch``.
So a lone request never waits for company, and under load each call of the engine
serves several requests. The thread whose request is first in the queue runs the batch
(no thread of its own, nothing to stop); when its own request is done it hands the next
batch to the first request still waiting.

Whether this pays depends on the device: on 2 CPU cores a batch of Whisper base decodes
costs as much CPU per request as the requests one by one, or more (docs/benchmarks.md,
P2), while a GPU is mostly idle on one short clip.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["ClipBatcher", "Job"]

T = TypeVar("T")


@dataclass(eq=False)
class Job(Generic[T]):
    """One request's clip; ``result`` or ``error`` is set when its batch has run."""

    key: Hashable
    payload: Any
    result: T | None = None
    error: BaseException | None = None
    done: bool = False
    _wake: threading.Event = field(default_factory=threading.Event)


class ClipBatcher(Generic[T]):
    """Runs ``decode(jobs)`` on batches of waiting jobs; ``decode`` sets each job's result."""

    def __init__(self, decode: Callable[[Sequence[Job[T]]], None], max_batch: int) -> None:
        self._decode = decode
        self._max_batch = max(1, max_batch)
        self._lock = threading.Lock()
        self._queue: list[Job[T]] = []
        self._busy = False
        self.batches: list[int] = []  # the size of every batch run, for tests and metrics

    def run(self, key: Hashable, payload: Any) -> T:
        """Decode ``payload`` in the next batch it fits in; blocks until it is done."""
        job: Job[T] = Job(key, payload)
        with self._lock:
            self._queue.append(job)
            lead = not self._busy
            self._busy = True
        if not lead:
            job._wake.wait()  # done, or first in the queue: its turn to run a batch
        while not job.done:
            self._run_next()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _run_next(self) -> None:
        with self._lock:
            key = self._queue[0].key
            batch = [job for job in self._queue if job.key == key][: self._max_batch]
            self._queue = [job for job in self._queue if job not in batch]
            self.batches.append(len(batch))
        try:
            self._decode(batch)
        except BaseException as exc:  # every job of the batch gets the engine's error
            for job in batch:
                job.error = job.error or exc
        finally:
            with self._lock:
                for job in batch:
                    job.done = True
                    job._wake.set()
                if self._queue:
                    self._queue[0]._wake.set()  # its thread runs the next batch
                else:
                    self._busy = False
