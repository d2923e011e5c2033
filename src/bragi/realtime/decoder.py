"""Decoding a session's turns: partial text while the person speaks, then the final text.

One worker task per session runs every decode of that session, one at a time, so a
session never has more than one decode in flight and the socket keeps reading meanwhile.

- **Final text**: each committed turn is decoded whole, under a lease taken for it
  (``manager.acquire``: it may queue; a full queue fails the turn with
  ``rate_limit_exceeded``) and given back at once. It is an offline transcription of the
  turn's audio.
- **Partials** (``redecode``): while the turn grows, it is decoded again, at most every
  ``partial_interval_ms`` and never sooner than the last decode took, so partials cost at
  most about half of one engine slot. A partial never queues: when the model has no free
  slot it is skipped. When the VAD first hears the silence that may end the turn, the
  whole turn so far is decoded at once; when the turn does end there, that decode *is*
  the final one (same audio up to trailing silence, same options), which is why the
  final text often comes out as soon as the silence has been timed.
- **Engine streams** (``stream``, Vosk): the turn holds one lease from its first partial
  to its final text, and audio is fed to the engine as it arrives.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from anyio import CancelScope, to_thread

from bragi.audio.resample import resample
from bragi.audio.types import Audio, Samples
from bragi.backends.checks import check_transcription
from bragi.backends.protocol import (
    ModelKind,
    Segment,
    SpeechToText,
    StreamingSpeechToText,
    TranscribeOptions,
)
from bragi.config import RealtimeSettings
from bragi.errors import BragiError, InvalidRequestError
from bragi.metrics import Metrics
from bragi.models.manager import Lease, ModelManager
from bragi.realtime.buffer import AudioBuffer
from bragi.realtime.formats import SAMPLE_RATE
from bragi.realtime.partials import has_free_slot, partials_mode
from bragi.realtime.session_config import SessionConfig
from bragi.realtime.turn import Decoded, EngineStream, FinalJob, Turn, TurnListener

__all__ = ["TurnDecoder"]

log = logging.getLogger(__name__)

MIN_PARTIAL_SAMPLES = SAMPLE_RATE // 2  # of speech: Whisper invents words for less
MAX_PARTIAL_SAMPLES = 30 * SAMPLE_RATE  # Whisper's window; longer turns wait for the end
MIN_NEW_SAMPLES = SAMPLE_RATE // 4  # audio a new partial must add
FEED_SAMPLES = SAMPLE_RATE // 10  # an engine stream is fed in pieces of at least this
#: ``transcription.delay`` ─▶ factor on the partial interval.
DELAY_FACTOR = {"minimal": 0.5, "low": 0.75, "medium": 1.0, "high": 2.0, "xhigh": 4.0}


class _Closed(Exception):
    """The session closed while a decode waited for its lease."""


def _transcribe_all(
    engine: SpeechToText, audio: Audio, options: TranscribeOptions
) -> list[Segment]:
    segments: Iterator[Segment]
    segments, _info = engine.transcribe(audio, options)
    try:
        return list(segments)
    finally:
        close = getattr(segments, "close", None)
        if callable(close):
            close()


def _logprobs(segments: list[Segment]) -> list[dict[str, Any]]:
    """Word-level log probabilities (Bragi's engines score words, not tokens)."""
    return [
        {
            "token": word.word,
            "logprob": math.log(max(word.probability, 1e-10)),
            "bytes": list(word.word.encode()),
        }
        for segment in segments
        for word in segment.words or ()
        if word.probability is not None
    ]


async def _release(lease: Lease) -> None:
    with CancelScope(shield=True):  # a session closing must still give the engine back
        await lease.release()


class TurnDecoder:
    def __init__(
        self,
        *,
        manager: ModelManager,
        settings: RealtimeSettings,
        metrics: Metrics,
        buffer: AudioBuffer,
        config: Callable[[], SessionConfig],
        listener: TurnListener,
    ) -> None:
        self._manager = manager
        self._settings = settings
        self._metrics = metrics
        self._buffer = buffer
        self._config = config
        self._listener = listener
        self._turn: Turn | None = None  # the turn still being spoken
        self._finals: collections.deque[FinalJob] = collections.deque()
        self._last: Decoded | None = None
        self._last_decode_s = 0.0
        self._last_finished = 0.0
        self._time_bound = False
        self._streams_to_close: list[EngineStream] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def busy(self) -> bool:
        """Whether a turn is waiting for its final text."""
        return bool(self._finals)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop after the step under way (a decode finishes in its thread, a lease being
        waited for is taken and given straight back), then give every lease back. The
        worker is never cancelled inside the model manager, so no load or lease is cut
        in half."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with CancelScope(shield=True):
                await asyncio.gather(self._task, return_exceptions=True)

    # --- what the session says -----------------------------------------------

    def open(self, turn: Turn) -> None:
        self._turn = turn
        self._wake.set()

    def audio_arrived(self) -> None:
        self._wake.set()

    def commit(self, job: FinalJob) -> None:
        job.turn.committed = True
        if self._turn is job.turn:
            self._turn = None
        self._finals.append(job)
        self._wake.set()

    def abandon(self, turn: Turn) -> None:
        turn.abandoned = True
        if self._turn is turn:
            self._turn = None
        if turn.stream is not None:
            self._streams_to_close.append(turn.stream)
            turn.stream = None
        self._wake.set()

    # --- the worker ----------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._closing:
                self._wake.clear()
                while self._streams_to_close:
                    await _release(self._streams_to_close.pop().lease)
                if self._finals:
                    await self._final(self._finals.popleft())
                    continue
                if await self._partial():
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._until_due())
        finally:
            streams = [*self._streams_to_close]
            streams += [job.turn.stream for job in self._finals if job.turn.stream is not None]
            if self._turn is not None and self._turn.stream is not None:
                streams.append(self._turn.stream)
            for stream in streams:
                await _release(stream.lease)

    def _interval(self) -> float:
        factor = DELAY_FACTOR.get(self._config().delay or "medium", 1.0)
        return max(self._settings.partial_interval_ms / 1000 * factor, self._last_decode_s)

    def _until_due(self) -> float | None:
        """How long until a partial step may be due; None: not before new audio comes."""
        if self._turn is None or not self._time_bound:
            return None
        wait = self._last_finished + self._interval() - time.monotonic()
        return max(wait, 0.05)

    def _options(self, config: SessionConfig, engine: SpeechToText) -> TranscribeOptions:
        options = TranscribeOptions(
            language=config.transcribe_language,
            prompt=config.transcribe_prompt,
            word_timestamps=config.logprobs and engine.capabilities.word_timestamps,
        )
        check_transcription(options, engine.capabilities, f"Model `{config.model}`")
        return options

    def _engine(self, lease: Lease, config: SessionConfig) -> SpeechToText:
        engine = lease.engine
        if not isinstance(engine, SpeechToText):
            raise InvalidRequestError(f"Model `{config.model}` cannot transcribe.", param="model")
        return engine

    async def _acquire(self, config: SessionConfig) -> Lease:
        lease = await self._manager.acquire(config.model, ModelKind.STT)
        if self._closing:  # the client left while this waited in the queue
            await _release(lease)
            raise _Closed
        return lease

    async def _decode(self, config: SessionConfig, samples: Samples) -> list[Segment]:
        lease = await self._acquire(config)
        try:
            engine = self._engine(lease, config)
            options = self._options(config, engine)
            audio = Audio(samples, SAMPLE_RATE)
            rate = engine.capabilities.sample_rate
            if rate != SAMPLE_RATE:
                audio = await to_thread.run_sync(resample, audio, rate)
            return await to_thread.run_sync(_transcribe_all, engine, audio, options)
        finally:
            await _release(lease)

    # --- partials ------------------------------------------------------------

    async def _partial(self) -> bool:
        """Run one partial step if one is due; whether it did. ``_time_bound`` says
        whether only time (the interval, a busy model) held it back."""
        self._time_bound = False
        turn, config = self._turn, self._config()
        if turn is None:
            return False
        try:
            model = self._manager.get(config.model)
        except BragiError:
            return False
        mode = partials_mode(model, self._manager)
        if turn.no_partials:
            return False
        if mode == "stream":
            return await self._feed(turn, config)
        if mode != "redecode":
            return False
        end = self._buffer.end
        spoken = end - (turn.speech_at if turn.speech_at is not None else turn.start)
        if spoken < MIN_PARTIAL_SAMPLES or end - turn.start > MAX_PARTIAL_SAMPLES:
            return False
        last = self._last if self._last is not None and self._last.turn is turn else None
        covered = last.end if last is not None else turn.start
        at_pause = turn.pause_at is not None and covered < turn.pause_at
        if not at_pause and end - covered < MIN_NEW_SAMPLES:
            return False
        due = time.monotonic() - self._last_finished >= self._interval()
        if not (at_pause or due) or not has_free_slot(self._manager, config.model):
            self._time_bound = True
            return False
        started = time.monotonic()
        try:
            segments = await self._decode(config, self._buffer.slice(turn.start, end))
        except _Closed:
            return False
        except Exception as exc:  # the final decode reports it; partials just stop trying
            log.debug("partial decode of %s failed: %s", turn.item_id, exc)
            turn.no_partials = True
            self._last_finished = time.monotonic()
            return True
        finally:
            self._last_decode_s = time.monotonic() - started
        self._last_finished = time.monotonic()
        self._metrics.realtime_partials.labels(config.model).inc()
        decoded = Decoded(turn, turn.start, end, config, segments)
        self._last = decoded
        if not turn.committed and not turn.abandoned:
            delta = turn.deltas.hypothesis(decoded.text)
            if delta:
                self._listener.on_delta(turn, delta)
        return True

    async def _feed(self, turn: Turn, config: SessionConfig) -> bool:
        """Feed the turn's new audio to its engine stream (opening one first)."""
        if turn.stream is None:
            if not has_free_slot(self._manager, config.model):
                self._time_bound = True
                return False
            try:
                turn.stream = await self._open_stream(turn, config)
            except _Closed:
                return False
            except Exception as exc:
                log.debug("no engine stream for %s: %s", turn.item_id, exc)
                turn.no_partials = True
                return True
            if turn.stream is None:
                return True
        stream, end = turn.stream, self._buffer.end
        if end - stream.fed_to < FEED_SAMPLES:
            return False
        try:
            text = await self._feed_stream(stream, self._buffer.slice(stream.fed_to, end), end)
        except Exception:  # the turn is decoded whole at its end instead
            log.exception("the engine stream of %s failed", turn.item_id)
            turn.stream, turn.no_partials = None, True
            await _release(stream.lease)
            return True
        self._metrics.realtime_partials.labels(config.model).inc()
        if not turn.committed and not turn.abandoned:
            delta = turn.deltas.hypothesis(text)
            if delta:
                self._listener.on_delta(turn, delta)
        return True

    async def _open_stream(self, turn: Turn, config: SessionConfig) -> EngineStream | None:
        lease = await self._acquire(config)
        try:
            engine = self._engine(lease, config)
            if not isinstance(engine, StreamingSpeechToText):  # e.g. forced into a worker
                turn.no_partials = True
                await _release(lease)
                return None
            stream = await to_thread.run_sync(engine.open_stream, self._options(config, engine))
        except BaseException:
            await _release(lease)
            raise
        return EngineStream(lease, stream, turn.start)

    async def _feed_stream(self, stream: EngineStream, samples: Samples, end: int) -> str:
        stream.fed_to = end
        text: str = await to_thread.run_sync(stream.stream.accept, Audio(samples, SAMPLE_RATE))
        return text

    # --- final text ----------------------------------------------------------

    def _reusable(self, job: FinalJob) -> Decoded | None:
        """The last partial decode, when it decoded this whole turn with these options."""
        last = self._last
        if last is None or last.turn is not job.turn or last.config != job.config:
            return None
        covered = job.speech_end if job.speech_end is not None else job.end
        return last if covered <= last.end <= job.end else None

    async def _final_segments(self, job: FinalJob) -> list[Segment]:
        turn = job.turn
        stream, turn.stream = turn.stream, None
        if stream is not None:
            try:
                if stream.fed_to < job.end:
                    offset = stream.fed_to - turn.start
                    await self._feed_stream(stream, job.audio[offset:], job.end)
                segments: list[Segment] = await to_thread.run_sync(stream.stream.finish)
                return segments
            finally:
                await _release(stream.lease)
        reused = self._reusable(job)
        if reused is not None:
            return reused.segments
        return await self._decode(job.config, job.audio)

    async def _final(self, job: FinalJob) -> None:
        turn, model = job.turn, job.config.model
        if turn.abandoned:
            return
        try:
            segments = await self._final_segments(job)
        except _Closed:
            return
        except BragiError as exc:
            self._metrics.realtime_turns.labels(model, "failed").inc()
            self._listener.on_failed(turn, exc)
            return
        except Exception as exc:  # an engine library failing in its own way
            log.exception("transcribing %s failed", turn.item_id)
            self._metrics.realtime_turns.labels(model, "failed").inc()
            self._listener.on_failed(turn, BragiError(f"Transcription failed: {exc}"))
            return
        finally:
            self._last = None
        if turn.abandoned:
            return
        transcript = "".join(segment.text for segment in segments).strip()
        if turn.deltas.sent:
            delta = turn.deltas.final(transcript)
            if delta:
                self._listener.on_delta(turn, delta)
        else:  # no partials: one delta per segment, as they were decoded
            for index, segment in enumerate(segments):
                text = segment.text.lstrip() if index == 0 else segment.text
                if text.strip():
                    self._listener.on_delta(turn, text)
        seconds = len(job.audio) / SAMPLE_RATE
        logprobs = _logprobs(segments) if job.config.logprobs else None
        self._metrics.realtime_turns.labels(model, "completed").inc()
        self._metrics.audio_seconds.labels(model, "in").inc(seconds)
        self._metrics.realtime_turn_latency.labels(model).observe(
            time.perf_counter() - job.committed_at
        )
        self._listener.on_completed(turn, transcript, seconds, logprobs)
