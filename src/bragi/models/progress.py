"""Download progress: what a pull reports, and how it is collected from huggingface_hub.

huggingface_hub reports bytes through a ``tqdm_class``: it builds one bar per file and
calls ``update(n)`` as chunks land. :class:`PullTracker` hands it a tqdm-shaped class
that forwards those counts into one :class:`DownloadProgress` for the whole pull, and
logs it, throttled, so a server's log shows a pull without drowning in lines.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["DownloadProgress", "InstallProgress", "ProgressCallback", "PullTracker", "SilentBar"]

log = logging.getLogger("bragi.models.store")

_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    """Where a pull stands. Byte counts cover every file of the pull; files already in
    the store count as done. ``bytes_done`` can step back if a server restarts a file."""

    repo_id: str
    filename: str  # the file being downloaded now (the last one, once done)
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else 1.0


ProgressCallback = Callable[[DownloadProgress], None]


@dataclass(slots=True)
class InstallProgress:
    """Where an engine environment's install stands (shared by the models waiting on it):
    updated by the installing task as pip's lines come, read by /health and ``bragi ps``."""

    environment: str
    started: float = field(default_factory=time.monotonic)
    step: str = "starting"  # the command running now, as `bragi backend install` says it
    last_line: str = ""  # pip's latest line (for keys and the log: it may name paths)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def summary(self) -> str:
        """Short and without paths, for the open /health/ready."""
        return f"installing the {self.environment} engine environment ({self.seconds:.0f} s)"


class SilentBar:
    """The slice of tqdm's interface that huggingface_hub drives, doing nothing.

    Covers the plain HTTP path (``update``), the Xet path (``update_transfer``, postfixes,
    ``total``) and ``snapshot_download``'s aggregate bars (descriptions, ``refresh``).
    """

    def __init__(self, *args: Any, total: int | None = None, initial: int = 0, **kwargs: Any):
        self.n = initial
        self.total = total

    def update(self, n: float | None = 1) -> None:
        self.n += int(n or 0)

    def update_transfer(self, n: float | None = 1) -> None:
        """Network bytes on the Xet path; ``update`` already counts the bytes written."""

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None: ...

    def set_transfer_postfix_str(self, *args: Any, **kwargs: Any) -> None: ...

    def set_description(self, *args: Any, **kwargs: Any) -> None: ...

    def set_description_str(self, *args: Any, **kwargs: Any) -> None: ...

    def refresh(self, *args: Any, **kwargs: Any) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> SilentBar:
        return self

    def __exit__(self, *exc_info: object) -> None: ...


class _FileBar(SilentBar):
    tracker: ClassVar[PullTracker]

    def __init__(self, *args: Any, total: int | None = None, initial: int = 0, **kwargs: Any):
        super().__init__(total=total, initial=0)
        if initial:  # a resumed file starts part-way
            self.update(initial)

    def update(self, n: float | None = 1) -> None:
        step = int(n or 0)
        self.n += step
        self.tracker.advance(step)


class PullTracker:
    """Adds per-file byte counts into one :class:`DownloadProgress` for a pull.

    ``files`` maps each file of the pull to its size; each is ``finish``-ed once, be it
    downloaded or found in the store. The callback runs in the downloading thread; an
    exception it raises aborts the pull (huggingface_hub then deletes the partial file),
    which is how a caller cancels.
    """

    def __init__(
        self,
        repo_id: str,
        files: Mapping[str, int],
        callback: ProgressCallback | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        log_every_s: float = 5.0,
    ):
        self.repo_id = repo_id
        self._sizes = dict(files)
        self._callback = callback
        self._clock = clock
        self._log_every_s = log_every_s
        self._lock = threading.Lock()  # the Xet path reports from its own thread
        self._finished = 0
        self._files_done = 0
        self._current = ""
        self._current_bytes = 0
        self._started = clock()
        self._last_log = self._started
        self._next_log_fraction = 0.1
        # One class per pull: huggingface_hub takes a class, not an instance.
        self.bar_class: type[SilentBar] = type("PullBar", (_FileBar,), {"tracker": self})

    @property
    def bytes_total(self) -> int:
        return sum(self._sizes.values())

    def start(self, filename: str) -> None:
        with self._lock:
            self._current, self._current_bytes = filename, 0

    def advance(self, step: int) -> None:
        with self._lock:
            self._current_bytes += step
        self._emit()

    def finish(self, filename: str) -> None:
        """Count ``filename`` as complete (at its listed size), downloaded or cached."""
        with self._lock:
            self._finished += self._sizes[filename]
            self._files_done += 1
            self._current, self._current_bytes = filename, 0
        self._emit()

    def snapshot(self) -> DownloadProgress:
        with self._lock:
            return DownloadProgress(
                repo_id=self.repo_id,
                filename=self._current,
                bytes_done=self._finished + self._current_bytes,
                bytes_total=self.bytes_total,
                files_done=self._files_done,
                files_total=len(self._sizes),
            )

    def elapsed(self) -> float:
        return self._clock() - self._started

    def _emit(self) -> None:
        progress = self.snapshot()
        self._log(progress)
        if self._callback is not None:
            self._callback(progress)

    def _log(self, progress: DownloadProgress) -> None:
        # Every 10 % or every few seconds, whichever comes first; the final line is the
        # store's "pulled ..." summary, so 100 % is not logged here.
        now = self._clock()
        due_by_fraction = progress.fraction >= self._next_log_fraction
        if progress.fraction >= 1.0 or not (
            due_by_fraction or now - self._last_log >= self._log_every_s
        ):
            return
        self._last_log = now
        while self._next_log_fraction <= progress.fraction:
            self._next_log_fraction += 0.1
        log.info(
            "pulling %s: %.0f%% (%.1f of %.1f MB, file %d/%d %s)",
            self.repo_id,
            100 * progress.fraction,
            progress.bytes_done / _MB,
            progress.bytes_total / _MB,
            min(progress.files_done + 1, progress.files_total),
            progress.files_total,
            progress.filename,
        )
