"""One transcription session: client events in, server events out.

The session owns the input audio buffer, the turn detector and the turn decoder. Client
events are handled one at a time, in order, by the socket's reader; decoding happens in
the decoder's own task, so appends keep being read while a turn decodes. Events leave
through ``send`` (the endpoint's writer), each with a fresh ``event_id``.

Dialects: a client that connected with ``OpenAI-Beta: realtime=v1`` gets
``transcription_session.created`` and ``conversation.item.created``; GA clients get
``session.created`` and ``conversation.item.added``/``done``. Either kind of update
event is understood on either connection and answered in its own shape.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from anyio import to_thread

from bragi.audio.types import Samples
from bragi.errors import BragiError, InvalidRequestError, UnsupportedCapabilityError
from bragi.realtime.buffer import AudioBuffer, milliseconds
from bragi.realtime.decoder import TurnDecoder
from bragi.realtime.events import (
    Append,
    Clear,
    Commit,
    SessionUpdate,
    client_event_id,
    error_event,
    new_id,
    parse_client_event,
    user_item,
)
from bragi.realtime.formats import SAMPLE_RATE, AudioDecoder
from bragi.realtime.session_config import (
    SessionConfig,
    parse_session,
    render_beta,
    render_ga,
)
from bragi.realtime.turn import FinalJob, Turn
from bragi.realtime.turn_detection import TurnDetector, TurnSignal

if TYPE_CHECKING:
    from bragi.realtime.service import RealtimeService

__all__ = ["RealtimeSession"]

log = logging.getLogger(__name__)

MIN_COMMIT_SAMPLES = SAMPLE_RATE // 10  # OpenAI: "Expected at least 100ms of audio"
INLINE_SECONDS = 1.0  # longer appends are decoded and VAD-scanned in a thread
_BETA_KEYS = frozenset({"input_audio_format", "input_audio_transcription", "turn_detection"})


class RealtimeSession:
    def __init__(
        self,
        service: RealtimeService,
        config: SessionConfig,
        *,
        beta: bool,
        send: Callable[[dict[str, Any]], None],
    ) -> None:
        self.service = service
        self.config = config
        self.beta = beta
        self.id = new_id("sess")
        self.expires_at = int(time.time() + service.settings.max_session_minutes * 60)
        self._send_raw = send
        self.buffer = AudioBuffer()
        self._audio = AudioDecoder(config.format)
        self._detector: TurnDetector | None = None
        self._turn: Turn | None = None
        self._previous_item: str | None = None
        self._decoder = TurnDecoder(
            manager=service.manager,
            settings=service.settings,
            metrics=service.metrics,
            buffer=self.buffer,
            config=lambda: self.config,
            listener=self,
        )

    # --- life -----------------------------------------------------------------

    async def start(self) -> None:
        """Send the created event; turn detection needs the VAD, loaded once per server."""
        if self.config.turn_detection is not None:
            if await self.service.vad() is None:
                self.config = dataclasses.replace(self.config, turn_detection=None)
            else:
                await self._configure_turns()
        if self.beta:
            self.send({"type": "transcription_session.created", "session": self._render(True)})
        else:
            self.send({"type": "session.created", "session": self._render(False)})
        self._decoder.start()
        self.service.warm(self.config.model)

    async def close(self) -> None:
        await self._decoder.close()
        self.buffer.clear()
        self._detector = None

    def send(self, event: dict[str, Any]) -> None:
        self._send_raw({"event_id": new_id("event"), **event})

    def send_error(self, error: BragiError, client_event: str | None = None) -> None:
        self.send(error_event(error, client_event))

    def _render(self, beta: bool) -> dict[str, Any]:
        render = render_beta if beta else render_ga
        return render(self.config, self.id, self.expires_at)

    # --- client events ----------------------------------------------------------

    async def handle_text(self, text: str) -> None:
        """Handle one client event; a bad one gets an ``error`` event, never an exception."""
        try:
            event = parse_client_event(text)
            if isinstance(event, Append):
                await self._append(event)
            elif isinstance(event, Commit):
                self._client_commit()
            elif isinstance(event, Clear):
                self._clear()
            else:
                await self._update(event)
        except BragiError as exc:
            self.send_error(exc, client_event_id(text))

    def handle_binary(self) -> None:
        self.send_error(
            InvalidRequestError(
                "Binary frames are not supported: send JSON text events (audio goes base64 in "
                "input_audio_buffer.append).",
                code="invalid_event",
            )
        )

    async def _update(self, event: SessionUpdate) -> None:
        session = event.session
        beta = event.beta or (
            isinstance(session, dict)
            and "type" not in session
            and "audio" not in session
            and bool(_BETA_KEYS & session.keys())
        )
        config = parse_session(self.config, session, beta=beta)
        param = (
            "session.input_audio_transcription.model"
            if beta
            else "session.audio.input.transcription.model"
        )
        if config.model != self.config.model:
            self.service.check_model(config.model, param)
            self.service.warm(config.model)
        if config.turn_detection is not None and await self.service.vad() is None:
            raise UnsupportedCapabilityError(
                f"Turn detection needs the Silero VAD, which is not installed here "
                f"({self.service.vad_problem}): pip install 'bragi[realtime]', or set "
                "turn_detection to null and commit turns yourself.",
                param="session.audio.input.turn_detection",
            )
        previous, self.config = self.config, config
        if config.format != previous.format:
            self._audio = AudioDecoder(config.format)
        if config.turn_detection != previous.turn_detection:
            await self._configure_turns()
        updated = "transcription_session.updated" if event.beta else "session.updated"
        self.send({"type": updated, "session": self._render(beta)})

    async def _configure_turns(self) -> None:
        turns = self.config.turn_detection
        vad = await self.service.vad() if turns is not None else None
        if turns is None or vad is None:
            self._detector = None
            return
        self._detector = TurnDetector(vad.stream(), turns.vad, self.buffer.end)

    # --- audio ---------------------------------------------------------------------

    def _process(self, data: bytes) -> tuple[Samples, list[TurnSignal]]:
        samples = self._audio.decode(data)
        detector = self._detector
        return samples, detector.feed(samples) if detector is not None else []

    async def _append(self, event: Append) -> None:
        data = event.decoded()
        if not data:
            return
        seconds = self._audio.seconds(len(data))
        limit = self.service.settings.max_buffer_seconds
        if self._detector is None and self.buffer.seconds + seconds > limit:
            raise InvalidRequestError(
                f"The input audio buffer would hold more than {limit:g} s of audio: commit "
                "or clear it first (realtime.max_buffer_seconds).",
                param="audio",
                code="input_audio_buffer_full",
            )
        if seconds > INLINE_SECONDS:
            samples, signals = await to_thread.run_sync(self._process, data)
        else:
            samples, signals = self._process(data)
        self.service.metrics.realtime_audio_seconds.inc(seconds)
        self.buffer.append(samples)
        for signal in signals:
            self._on_signal(signal)
        if self._detector is None:
            if self._turn is None and len(self.buffer):
                self._open_turn(self.buffer.start)
        elif self._turn is None:
            prefix = self._detector.parameters.prefix_samples
            self.buffer.drop_before(self.buffer.end - prefix)  # keep only the prefix padding
        elif (self.buffer.end - self._turn.start) / SAMPLE_RATE >= limit:
            self._cut_long_turn()
        self._decoder.audio_arrived()

    def _open_turn(self, start: int, speech_at: int | None = None) -> Turn:
        turn = Turn(new_id("item"), start, speech_at=speech_at)
        self._turn = turn
        self._decoder.open(turn)
        return turn

    def _on_signal(self, signal: TurnSignal) -> None:
        assert self._detector is not None
        turn = self._turn
        if signal.kind == "started":
            if turn is None:
                start = signal.sample - self._detector.parameters.prefix_samples
                turn = self._open_turn(max(start, self.buffer.start), speech_at=signal.sample)
            turn.pause_at = None
            self.send(
                {
                    "type": "input_audio_buffer.speech_started",
                    "audio_start_ms": milliseconds(turn.start),
                    "item_id": turn.item_id,
                }
            )
        elif turn is None:
            return
        elif signal.kind == "paused":
            turn.pause_at = signal.sample
            self._decoder.audio_arrived()
        elif signal.kind == "resumed":
            turn.pause_at = None
        else:
            self.send(
                {
                    "type": "input_audio_buffer.speech_stopped",
                    "audio_end_ms": milliseconds(signal.sample),
                    "item_id": turn.item_id,
                }
            )
            self._commit(signal.sample, speech_end=turn.pause_at)

    def _cut_long_turn(self) -> None:
        """A turn reached max_buffer_seconds: commit it here; speech goes on in a new one."""
        assert self._turn is not None
        end = self.buffer.end
        self.send(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": milliseconds(end),
                "item_id": self._turn.item_id,
            }
        )
        self._commit(end, speech_end=None)
        turn = self._open_turn(end)
        self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": milliseconds(end),
                "item_id": turn.item_id,
            }
        )

    def _client_commit(self) -> None:
        self.buffer.append(self._audio.flush())
        start = self._turn.start if self._turn is not None else self.buffer.start
        kept = self.buffer.end - max(start, self.buffer.start)
        if kept < MIN_COMMIT_SAMPLES:
            raise InvalidRequestError(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"100ms of audio, but buffer only has {kept * 1000 / SAMPLE_RATE:.2f}ms of "
                "audio.",
                code="input_audio_buffer_commit_empty",
            )
        if self._detector is not None:
            self._detector.reset()
        self._commit(self.buffer.end, speech_end=None)

    def _commit(self, end: int, *, speech_end: int | None) -> None:
        turn = self._turn or Turn(new_id("item"), self.buffer.start)
        self._turn = None
        audio = self.buffer.slice(turn.start, end)
        self.buffer.drop_before(end)
        previous, self._previous_item = self._previous_item, turn.item_id
        turn.previous_item_id = previous
        self.send(
            {
                "type": "input_audio_buffer.committed",
                "item_id": turn.item_id,
                "previous_item_id": previous,
            }
        )
        added = "conversation.item.created" if self.beta else "conversation.item.added"
        self.send(
            {"type": added, "previous_item_id": previous, "item": user_item(turn.item_id, None)}
        )
        self._decoder.commit(FinalJob(turn, audio, end, speech_end, self.config))

    def _clear(self) -> None:
        if self._turn is not None:
            self._decoder.abandon(self._turn)
            self._turn = None
        if self._detector is not None:
            self._detector.reset()
        self.buffer.clear()
        self.send({"type": "input_audio_buffer.cleared"})

    # --- what the decoder reports (a TurnListener) -------------------------------

    def on_delta(self, turn: Turn, delta: str) -> None:
        self.send(
            {
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": turn.item_id,
                "content_index": 0,
                "delta": delta,
            }
        )

    def on_completed(
        self, turn: Turn, transcript: str, seconds: float, logprobs: list[dict[str, Any]] | None
    ) -> None:
        event: dict[str, Any] = {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": turn.item_id,
            "content_index": 0,
            "transcript": transcript,
            "usage": {"type": "duration", "seconds": round(seconds, 3)},
        }
        if logprobs is not None:
            event["logprobs"] = logprobs
        self.send(event)
        if not self.beta:
            self.send(
                {
                    "type": "conversation.item.done",
                    "previous_item_id": turn.previous_item_id,
                    "item": user_item(turn.item_id, transcript),
                }
            )

    def on_failed(self, turn: Turn, error: BragiError) -> None:
        body = error.to_body()["error"]
        self.send(
            {
                "type": "conversation.item.input_audio_transcription.failed",
                "item_id": turn.item_id,
                "content_index": 0,
                "error": body,
            }
        )
