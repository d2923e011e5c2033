"""One configured model and everything the server tracks about it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from bragi.backends.protocol import Backend, BackendOptions, Engine, ModelKind
from bragi.config import ModelConfig
from bragi.models.resolve import ModelSource
from bragi.models.store import DownloadProgress

__all__ = ["ModelState", "ServedModel"]


class ModelState(StrEnum):
    DOWNLOADING = "downloading"  # files not on disk yet (queued or fetching)
    AVAILABLE = "available"  # on disk, not loaded
    LOADING = "loading"
    LOADED = "loaded"
    FAILED = "failed"


@dataclass(eq=False)
class ServedModel:
    alias: str
    config: ModelConfig
    source: ModelSource
    kind: ModelKind | None = None
    backend: Backend | None = None
    model_dir: Path | None = None
    options: BackendOptions | None = None
    state: ModelState = ModelState.DOWNLOADING
    error: str | None = None
    engine: Engine | None = None
    progress: DownloadProgress | None = None
    loaded_at: float | None = None
    last_used: float = 0.0
    in_use: int = 0  # leases held
    running: int = 0  # requests admitted past the concurrency gate
    waiting: int = 0  # requests queued at the gate
    requests_served: int = 0
    fetch_failures: int = 0  # consecutive failed downloads (for the retry backoff)
    load_failed_at: float | None = None  # when loading last failed (files on disk)
    memory_bytes: int | None = None  # resident memory the load added (approximate)
    load_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _slots: asyncio.Semaphore | None = None

    @property
    def backend_name(self) -> str | None:
        if self.backend is not None:
            return self.backend.name
        if self.config.backend is not None:
            return self.config.backend
        return self.source.catalog.backend if self.source.catalog else None

    def slots(self, limit: int) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(limit)
        return self._slots

    def keep_alive(self, default: float) -> float:
        return default if self.config.keep_alive is None else self.config.keep_alive

    def expired(self, now: float, default_keep_alive: float) -> bool:
        keep_alive = self.keep_alive(default_keep_alive)
        return keep_alive >= 0 and now - self.last_used >= keep_alive

    def unload_in(self, now: float, default_keep_alive: float) -> float | None:
        """Seconds until keep-alive unloads this model; None when loaded forever or unloaded."""
        keep_alive = self.keep_alive(default_keep_alive)
        if self.engine is None or keep_alive < 0:
            return None
        if self.in_use:
            return keep_alive
        return max(0.0, keep_alive - (now - self.last_used))

    def retry_after_estimate(self) -> int:
        # Without timing data, one second per queued request is an honest lower bound.
        return max(1, self.waiting)

    def progress_text(self) -> str:
        progress = self.progress
        if progress is None or not progress.bytes_total:
            return "waiting to start"
        return f"{100 * progress.bytes_done / progress.bytes_total:.0f}%"

    def fail(self, reason: str) -> None:
        self.state = ModelState.FAILED
        self.error = reason

    def fail_load(self, reason: str, now: float) -> None:
        """Loading failed: the files are there, so a later try may work (an engine
        environment installed meanwhile, memory freed, a driver fixed)."""
        self.fail(reason)
        self.load_failed_at = now

    def retry_load(self) -> None:
        self.state = ModelState.AVAILABLE
        self.error = None
        self.load_failed_at = None

    def set_prepared(self, backend: Backend, model_dir: Path, options: BackendOptions) -> None:
        self.backend = backend
        self.kind = backend.kind
        self.model_dir = model_dir
        self.options = options
        self.error = None
        self.state = ModelState.AVAILABLE

    def set_loaded(self, engine: Engine, now: float, memory_bytes: int | None = None) -> None:
        self.engine = engine
        self.memory_bytes = memory_bytes
        self.loaded_at = now
        self.last_used = now
        self.state = ModelState.LOADED

    def set_unloaded(self) -> None:
        self.engine = None
        self.memory_bytes = None
        self.loaded_at = None
        self.state = ModelState.AVAILABLE
