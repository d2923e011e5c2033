"""What every realtime session of one server shares: settings, the model manager, the
metrics, the Silero VAD (loaded once, on first use), and the count of open sessions."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from anyio import to_thread

from bragi.backends.protocol import ModelKind
from bragi.backends.vad import SileroVad, load_silero_vad
from bragi.config import RealtimeSettings
from bragi.errors import BragiError, InvalidRequestError, ModelNotFoundError
from bragi.metrics import Metrics
from bragi.models.manager import ModelManager
from bragi.realtime.partials import partials_mode
from bragi.realtime.session_config import SessionConfig

if TYPE_CHECKING:
    from bragi.realtime.session import RealtimeSession

__all__ = ["RealtimeService"]


log = logging.getLogger(__name__)


class RealtimeService:
    def __init__(self, settings: RealtimeSettings, manager: ModelManager, metrics: Metrics):
        self.settings = settings
        self.manager = manager
        self.metrics = metrics
        self.sessions: set[RealtimeSession] = set()
        self._vad: SileroVad | None = None
        self.vad_problem: str | None = None
        self._vad_lock = asyncio.Lock()
        self._warming: set[asyncio.Task[None]] = set()
        metrics.realtime_sessions.set_function(lambda: len(self.sessions))
        metrics.realtime_buffered_seconds.set_function(self._buffered_seconds)

    # --- sessions -----------------------------------------------------------------

    def admit(self, session: RealtimeSession) -> bool:
        """Count a new session in, unless ``max_sessions`` are open."""
        if len(self.sessions) >= self.settings.max_sessions:
            return False
        self.sessions.add(session)
        self.metrics.realtime_sessions_opened.inc()
        return True

    def leave(self, session: RealtimeSession) -> None:
        self.sessions.discard(session)

    def _buffered_seconds(self) -> float:
        return sum(session.buffer.seconds for session in self.sessions)

    # --- models -------------------------------------------------------------------

    def default_model(self) -> str:
        """``realtime.default_model``, else ``whisper-1`` when it transcribes, else the
        first speech-to-text model."""
        if self.settings.default_model:
            return self.settings.default_model
        candidates = [
            model.alias
            for model in self.manager.models()
            if partials_mode(model, self.manager) is not None
        ]
        if "whisper-1" in candidates or not candidates:
            return "whisper-1"
        return candidates[0]

    def check_model(self, alias: str, param: str) -> None:
        """That ``alias`` is served and transcribes (else the error a client should see)."""
        try:
            model = self.manager.get(alias)
        except ModelNotFoundError as exc:
            raise ModelNotFoundError(exc.message, param=param) from None
        if model.kind is not None and model.kind is not ModelKind.STT:
            raise InvalidRequestError(
                f"Model `{alias}` is a text-to-speech model; name a speech-to-text model to "
                "transcribe with.",
                param=param,
                code="model_kind_mismatch",
            )

    def warm(self, alias: str) -> None:
        """Load ``alias`` in the background, so a new session's first turn does not wait
        for it (it holds no lease: keep-alive unloads it as usual). Never cancelled: a
        load cut short would leave an engine nobody closes."""
        model = self.manager.models()
        if not any(m.alias == alias and m.engine is None for m in model):
            return
        task = asyncio.get_running_loop().create_task(self._load(alias))
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def stop(self) -> None:
        """At shutdown: let loads started for sessions finish, before models unload."""
        await asyncio.gather(*self._warming, return_exceptions=True)

    async def _load(self, alias: str) -> None:
        try:
            await self.manager.load(alias)
        except BragiError as exc:  # the turn will report it
            log.debug("warming %s failed: %s", alias, exc.message)

    def initial_config(self, model: str | None) -> SessionConfig:
        return SessionConfig(model=model or self.default_model())

    # --- turn detection -------------------------------------------------------------

    async def vad(self) -> SileroVad | None:
        """The shared Silero model (thread-safe: each stream keeps its own state); None
        when it cannot be loaded, with the reason in ``vad_problem``."""
        if self._vad is not None or self.vad_problem is not None:
            return self._vad
        async with self._vad_lock:
            if self._vad is None and self.vad_problem is None:
                try:
                    self._vad = await to_thread.run_sync(load_silero_vad)
                except BragiError as exc:
                    self.vad_problem = exc.message
                    log.warning("realtime turn detection is off: %s", exc.message)
        return self._vad
