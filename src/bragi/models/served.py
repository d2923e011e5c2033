"""One configured model: what the server knows about it, and the moves between its states.

::

    move           from                             to
    downloading    DOWNLOADING, AVAILABLE, FAILED   DOWNLOADING
    prepared       DOWNLOADING                      AVAILABLE
    fetch_failed   DOWNLOADING                      FAILED  (tried again with backoff)
    unavailable    DOWNLOADING, AVAILABLE,          FAILED  (until an admin load)
                   INSTALLING, FAILED
    installing     AVAILABLE                        INSTALLING  (its engine environment)
    installed      INSTALLING                       AVAILABLE
    loading        AVAILABLE                        LOADING
    loaded         LOADING                          LOADED
    load_failed    LOADING                          FAILED  (tried again after 30 s)
    files_missing  LOADING                          DOWNLOADING
    retry_load     FAILED                           AVAILABLE
    unloading      LOADED                           UNLOADING
    unloaded       UNLOADING                        AVAILABLE

Each move is a method that checks the state it starts from, so a move the manager does
not expect fails loudly instead of leaving the model half in one state and half in
another. The manager's parts make the moves: downloads (:mod:`bragi.models.downloads`) the
first four, installs (:mod:`bragi.models.installs`) the next two, residency
(:mod:`bragi.models.residency`) the rest, and ``leased`` and ``returned`` count the
requests using the engine. Everything else reads properties.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from pathlib import Path

from bragi.backends.protocol import Backend, BackendOptions, Engine, ModelKind
from bragi.config import ModelConfig
from bragi.models.admission import Admission
from bragi.models.progress import InstallProgress
from bragi.models.resolve import ModelSource
from bragi.models.store import DownloadProgress

__all__ = ["RESIDENT", "ModelState", "ServedModel"]


class ModelState(StrEnum):
    DOWNLOADING = "downloading"  # files not on disk yet (queued or fetching)
    AVAILABLE = "available"  # on disk, not loaded
    INSTALLING = "installing"  # on disk, its engine environment being installed
    LOADING = "loading"
    LOADED = "loaded"
    UNLOADING = "unloading"  # the engine is being closed
    FAILED = "failed"


#: States in which the model holds (or is about to hold) memory: they count toward
#: ``max_loaded_models``.
RESIDENT = frozenset({ModelState.LOADING, ModelState.LOADED, ModelState.UNLOADING})


class ServedModel:
    """A configured model: its source, its state, its engine when loaded, its counters."""

    def __init__(
        self,
        alias: str,
        config: ModelConfig,
        source: ModelSource,
        *,
        kind: ModelKind | None = None,
        max_concurrency: int = 2,
        max_queue: int = 16,
    ):
        self.alias = alias
        self.config = config
        self.source = source
        self.kind = kind
        self.admission = Admission(alias, max_concurrency, max_queue)
        #: Held while the model loads, unloads or is evicted, so those never overlap.
        self.lock = asyncio.Lock()
        self._state = ModelState.DOWNLOADING
        self._error: str | None = None
        self._failure: str | None = None
        self._backend: Backend | None = None
        self._model_dir: Path | None = None
        self._options: BackendOptions | None = None
        self._engine: Engine | None = None
        self._progress: DownloadProgress | None = None
        self._install: InstallProgress | None = None
        self._loaded_at: float | None = None
        self._last_used = 0.0
        self._in_use = 0
        self._requests_served = 0
        self._fetch_failures = 0
        self._load_failed_at: float | None = None
        self._memory_bytes: int | None = None

    def __repr__(self) -> str:
        return f"<ServedModel {self.alias} {self._state.value}>"

    # --- what the rest of the server reads ----------------------------------

    @property
    def state(self) -> ModelState:
        """Where the model is in its life."""
        return self._state

    @property
    def error(self) -> str | None:
        """Why it failed, in full (for keys and the log)."""
        return self._error

    @property
    def failure(self) -> str | None:
        """Why it failed, in two words (for open endpoints)."""
        return self._failure

    @property
    def backend(self) -> Backend | None:
        return self._backend

    @property
    def model_dir(self) -> Path | None:
        return self._model_dir

    @property
    def options(self) -> BackendOptions | None:
        return self._options

    @property
    def engine(self) -> Engine | None:
        """The engine, while LOADED or UNLOADING."""
        return self._engine

    @property
    def progress(self) -> DownloadProgress | None:
        """The download, while DOWNLOADING."""
        return self._progress

    @property
    def install(self) -> InstallProgress | None:
        """Its engine environment's install, while INSTALLING."""
        return self._install

    @property
    def loaded_at(self) -> float | None:
        return self._loaded_at

    @property
    def last_used(self) -> float:
        return self._last_used

    @property
    def in_use(self) -> int:
        """Leases held."""
        return self._in_use

    @property
    def requests_served(self) -> int:
        return self._requests_served

    @property
    def fetch_failures(self) -> int:
        """Downloads failed in a row (for the retry backoff)."""
        return self._fetch_failures

    @property
    def load_failed_at(self) -> float | None:
        """When loading last failed (the files were there)."""
        return self._load_failed_at

    @property
    def memory_bytes(self) -> int | None:
        """Resident memory the load added (approximate)."""
        return self._memory_bytes

    @property
    def running(self) -> int:
        """Requests admitted past the concurrency gate."""
        return self.admission.running

    @property
    def waiting(self) -> int:
        """Requests queued at the gate."""
        return self.admission.waiting

    @property
    def backend_name(self) -> str | None:
        if self._backend is not None:
            return self._backend.name
        if self.config.backend is not None:
            return self.config.backend
        return self.source.catalog.backend if self.source.catalog else None

    def keep_alive(self, default: float) -> float:
        return default if self.config.keep_alive is None else self.config.keep_alive

    def expired(self, now: float, default_keep_alive: float) -> bool:
        keep_alive = self.keep_alive(default_keep_alive)
        return keep_alive >= 0 and now - self._last_used >= keep_alive

    def unload_in(self, now: float, default_keep_alive: float) -> float | None:
        """Seconds until keep-alive unloads this model; None when loaded forever or unloaded."""
        keep_alive = self.keep_alive(default_keep_alive)
        if self._engine is None or keep_alive < 0:
            return None
        if self._in_use:
            return keep_alive
        return max(0.0, keep_alive - (now - self._last_used))

    def retry_after_estimate(self) -> int:
        return self.admission.retry_after()

    def progress_text(self) -> str:
        if self._install is not None:
            return self._install.summary()
        progress = self._progress
        if progress is None or not progress.bytes_total:
            return "waiting to start"
        return f"{100 * progress.bytes_done / progress.bytes_total:.0f}%"

    # --- the moves ----------------------------------------------------------

    def _move(self, allowed: frozenset[ModelState] | set[ModelState], to: ModelState) -> None:
        if self._state not in allowed:
            raise RuntimeError(f"model {self.alias}: no move from {self._state} to {to}")
        self._state = to

    def downloading(self) -> None:
        """Its files are being fetched (at start-up, on a retry, or again after they vanished)."""
        self._move(
            {ModelState.DOWNLOADING, ModelState.FAILED, ModelState.AVAILABLE},
            ModelState.DOWNLOADING,
        )
        self._progress = None

    def report(self, progress: DownloadProgress) -> None:
        """A download's progress (called from the downloading thread)."""
        if self._state is ModelState.DOWNLOADING:
            self._progress = progress

    def prepared(self, backend: Backend, model_dir: Path, options: BackendOptions) -> None:
        """Its files are on disk and its backend chosen: it can be loaded."""
        self._move({ModelState.DOWNLOADING}, ModelState.AVAILABLE)
        self._backend = backend
        self.kind = backend.kind
        self._model_dir = model_dir
        self._options = options
        self._error = self._failure = None
        self._progress = None
        self._fetch_failures = 0

    def fetch_failed(self, reason: str) -> int:
        """A download failed in a way worth trying again; returns the failures in a row."""
        self._fail({ModelState.DOWNLOADING}, reason, "download failed")
        self._fetch_failures += 1
        return self._fetch_failures

    def unavailable(self, reason: str, failure: str = "unavailable") -> None:
        """It cannot serve until something changes outside (configuration, install, hub)."""
        self._fail(
            {
                ModelState.DOWNLOADING,
                ModelState.AVAILABLE,
                ModelState.INSTALLING,
                ModelState.FAILED,
            },
            reason,
            failure,
        )

    def installing(self, install: InstallProgress) -> None:
        """Its files are there; its engine environment is being installed (on demand)."""
        self._move({ModelState.AVAILABLE}, ModelState.INSTALLING)
        self._install = install

    def installed(self) -> None:
        self._move({ModelState.INSTALLING}, ModelState.AVAILABLE)
        self._install = None

    def loading(self) -> None:
        self._move({ModelState.AVAILABLE}, ModelState.LOADING)

    def loaded(self, engine: Engine, now: float, memory_bytes: int | None = None) -> None:
        self._move({ModelState.LOADING}, ModelState.LOADED)
        self._engine = engine
        self._memory_bytes = memory_bytes
        self._loaded_at = self._last_used = now

    def load_failed(self, reason: str, now: float) -> None:
        """Loading failed: the files are there, so a later try may work (an engine
        environment installed meanwhile, memory freed, a driver fixed)."""
        self._fail({ModelState.LOADING}, reason, "load failed")
        self._load_failed_at = now

    def files_missing(self) -> None:
        """Its files vanished (deleted under it): back to downloading them."""
        self._move({ModelState.LOADING}, ModelState.DOWNLOADING)
        self._progress = None

    def retry_load(self) -> None:
        self._move({ModelState.FAILED}, ModelState.AVAILABLE)
        self._error = self._failure = None
        self._load_failed_at = None

    def unloading(self, *, force: bool = False) -> Engine:
        """Its engine is about to be closed; returns it. Only when idle, unless ``force``
        (shutdown)."""
        if self._in_use and not force:
            raise RuntimeError(f"model {self.alias}: unloading with {self._in_use} leases held")
        self._move({ModelState.LOADED}, ModelState.UNLOADING)
        assert self._engine is not None
        return self._engine

    def unloaded(self) -> None:
        self._move({ModelState.UNLOADING}, ModelState.AVAILABLE)
        self._engine = None
        self._memory_bytes = None
        self._loaded_at = None

    def leased(self, now: float) -> None:
        """A request took its engine."""
        if self._state is not ModelState.LOADED:
            raise RuntimeError(f"model {self.alias}: leasing while {self._state}")
        self._in_use += 1
        self._last_used = now

    def returned(self, now: float) -> None:
        """A request gave its engine back (in any state: shutdown may have closed it)."""
        if self._in_use <= 0:
            raise RuntimeError(f"model {self.alias}: more leases returned than taken")
        self._in_use -= 1
        self._last_used = now
        self._requests_served += 1

    def _fail(self, allowed: set[ModelState], reason: str, failure: str) -> None:
        self._move(allowed, ModelState.FAILED)
        self._error = reason
        self._failure = failure
        self._progress = None
        self._install = None
