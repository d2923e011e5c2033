"""Text to speech over Wyoming.

* ``synthesize``: one ``audio-start``, the audio as the engine makes it, one
  ``audio-stop`` (Home Assistant's one-shot path stops reading at the first
  ``audio-stop``).
* ``synthesize-start``, ``synthesize-chunk``*, ``synthesize-stop``: the path Home
  Assistant takes whenever a server can stream. Text is cut into sentences as it
  arrives (:mod:`bragi.wyoming.textstream`) and each sentence is spoken as soon as it is
  whole, as one ``audio-start``/``audio-chunk``*/``audio-stop`` block (as wyoming-piper
  does), all blocks in one format; ``synthesize-stopped`` ends the reply. The
  ``synthesize`` copy Home Assistant sends inside a stream is ignored.

Audio is 16-bit mono at the engine's own rate, in chunks of :data:`SAMPLES_PER_CHUNK`.
The voice is resolved and the model leased before the first byte; even text with
nothing to speak gets an ``audio-start`` and ``audio-stop`` (Home Assistant needs the
first for its WAV header).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anyio import CancelScope, to_thread

from bragi.audio import resample
from bragi.audio.encode import to_pcm16
from bragi.audio.types import Audio
from bragi.backends.protocol import ModelKind, SynthesisRequest, TextToSpeech, VoiceReference
from bragi.backends.sentences import split_sentences
from bragi.errors import BragiError, InvalidRequestError, UnsupportedCapabilityError
from bragi.models.manager import Lease
from bragi.voices.choose import choose_voice
from bragi.wyoming.choose import VoicePlan
from bragi.wyoming.events import (
    SynthesizeChunkData,
    SynthesizeData,
    SynthesizeStartData,
    VoiceData,
    audio_chunk,
    audio_start,
    audio_stop,
    parse,
)
from bragi.wyoming.framing import Event
from bragi.wyoming.outcome import internal_error, status_of
from bragi.wyoming.textstream import SentenceBuffer
from bragi.wyoming.threads import in_thread

if TYPE_CHECKING:
    from bragi.wyoming.connection import Connection

__all__ = ["ROUTE", "SAMPLES_PER_CHUNK", "SpeechOutput"]

log = logging.getLogger(__name__)

#: The route label of Wyoming syntheses in Bragi's request metrics.
ROUTE = "wyoming/synthesize"
#: Samples per ``audio-chunk`` (wyoming-piper's default).
SAMPLES_PER_CHUNK = 1024


def _check_text_format(text_format: str | None) -> None:
    if text_format not in (None, "text"):
        raise UnsupportedCapabilityError(
            f"text_format {text_format!r} is not supported; send plain text.",
            param="text_format",
        )


@dataclass
class _Speaker:
    """A leased engine and the voice it speaks in."""

    lease: Lease
    engine: TextToSpeech
    voice: str
    reference: VoiceReference | None
    language: str | None

    @property
    def rate(self) -> int:
        return self.engine.capabilities.sample_rate

    async def pcm(self, text: str) -> AsyncGenerator[bytes, None]:
        """``text`` spoken, as 16-bit PCM pieces, as the engine makes them."""
        request = SynthesisRequest(text, self.voice, 1.0, self.language, self.reference)
        started: list[Iterator[Audio]] = []  # closed below even if this is cancelled

        def start() -> Audio | None:
            # One trip to a worker thread for the request and its first chunk.
            started.append(self.engine.synthesize(request))
            return next(started[0], None)

        try:
            chunk = await in_thread(start)
            while chunk is not None:
                if chunk.sample_rate != self.rate:
                    chunk = resample(chunk, self.rate)
                if len(chunk.samples):
                    yield to_pcm16(chunk.samples).tobytes()
                chunk = await in_thread(next, started[0], None)
        finally:
            close = getattr(started[0], "close", None) if started else None
            if callable(close):  # a client that left stops the engine now
                close()


def _chunks(rate: int, pcm: bytes) -> list[Event]:
    step = SAMPLES_PER_CHUNK * 2
    return [audio_chunk(rate, pcm[i : i + step]) for i in range(0, len(pcm), step)]


class SpeechOutput:
    """The text-to-speech side of one connection."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.services = connection.services
        self.stream: _SpeechStream | None = None

    @property
    def answering(self) -> bool:
        """Whether a stream is still sending audio after its ``synthesize-stop`` (one
        that has sent ``synthesize-stopped`` is not: its client may idle out)."""
        stream = self.stream
        return stream is not None and stream.finishing and not stream.task.done()

    async def settle(self) -> None:
        """Wait for a finishing stream, so the next reply does not interleave with it."""
        if self.stream is not None and self.stream.finishing:
            await self.stream.wait()
            self.stream = None

    async def close(self, *, stop: bool = False) -> None:
        """The connection ends: a stream still being written is stopped, a finishing
        one finishes (its writes fail if the client is really gone) unless ``stop``."""
        if self.stream is not None:
            if self.stream.finishing and not stop:
                await self.stream.wait()
            else:
                await self.stream.cancel()
            self.stream = None

    async def speaker(self, plan: VoicePlan) -> _Speaker:
        """Lease the plan's model and resolve its voice (a built-in or cloned one)."""
        services = self.services
        lease = await services.manager.acquire(plan.alias, ModelKind.TTS)
        try:
            engine = lease.engine
            if not isinstance(engine, TextToSpeech):
                raise InvalidRequestError(f"Model `{plan.alias}` cannot speak.", param="voice")
            requested = plan.voice
            if requested is None:
                voices = engine.voices()
                if not voices:
                    raise InvalidRequestError(
                        f"Model `{plan.alias}` has no voices of its own; name a voice.",
                        param="voice",
                    )
                requested = voices[0].id
            voice, reference = await to_thread.run_sync(
                choose_voice,
                requested,
                plan.alias,
                engine,
                services.settings.voices,
                services.catalog.store,
                lambda: list(services.catalog.cloners),
                services.catalog.is_public,
            )
        except BaseException:
            await lease.release()
            raise
        return _Speaker(lease, engine, voice, reference, plan.language)

    async def plan(self, voice: VoiceData | None) -> VoicePlan:
        snapshot = await self.services.catalog.current(wait=0)
        return await to_thread.run_sync(self.services.chooser.voice, voice, snapshot)

    # --- one-shot -----------------------------------------------------------------

    async def on_synthesize(self, event: Event) -> None:
        request = parse(SynthesizeData, event)
        if self.stream is not None and not self.stream.finishing:
            return  # Home Assistant's copy of the streamed text: already being spoken
        await self.settle()
        _check_text_format(request.text_format)
        plan = await self.plan(request.voice)
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            speaker = await self.speaker(plan)
            try:
                await self._speak_once(speaker, request.text, plan.alias)
            finally:
                await speaker.lease.release()
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self.services.record(ROUTE, plan.alias, status_of(failure), started)

    async def _speak_once(self, speaker: _Speaker, text: str, alias: str) -> None:
        send, rate = self.connection.send, speaker.rate
        seconds = 0.0
        if split_sentences(text):
            async with contextlib.aclosing(speaker.pcm(text)) as pieces:
                async for pcm in pieces:
                    events = _chunks(rate, pcm)
                    await send(*([audio_start(rate)] if seconds == 0 else []), *events)
                    seconds += len(pcm) / 2 / rate
        await send(*([audio_start(rate)] if seconds == 0 else []), audio_stop())
        self.services.metrics.audio_seconds.labels(alias, "out").inc(seconds)

    # --- streaming ----------------------------------------------------------------

    async def on_synthesize_start(self, event: Event) -> None:
        request = parse(SynthesizeStartData, event)
        await self.settle()
        if self.stream is not None:  # a second start before a stop: the first is dropped
            await self.stream.cancel()
        _check_text_format(request.text_format)
        self.stream = _SpeechStream(self, await self.plan(request.voice))

    async def on_synthesize_chunk(self, event: Event) -> None:
        request = parse(SynthesizeChunkData, event)
        if self.stream is None or self.stream.finishing:
            raise InvalidRequestError(
                "synthesize-chunk outside a synthesize-start ... synthesize-stop stream.",
                code="invalid_event",
            )
        self.stream.add(request.text)

    async def on_synthesize_stop(self, event: Event) -> None:
        if self.stream is not None and not self.stream.finishing:
            self.stream.finish()


class _SpeechStream:
    """One streamed reply; its task speaks sentences as they become whole."""

    def __init__(self, output: SpeechOutput, plan: VoicePlan):
        self.output = output
        self.plan = plan
        self.text = SentenceBuffer()
        self.sentences: asyncio.Queue[str | None] = asyncio.Queue()
        self.finishing = False
        self.task = asyncio.create_task(self._speak_all())

    def add(self, text: str) -> None:
        for sentence in self.text.add(text):
            self.sentences.put_nowait(sentence)

    def finish(self) -> None:
        for sentence in self.text.flush():
            self.sentences.put_nowait(sentence)
        self.sentences.put_nowait(None)
        self.finishing = True

    async def wait(self) -> None:
        await asyncio.gather(self.task, return_exceptions=True)

    async def cancel(self) -> None:
        self.task.cancel()
        await self.wait()

    async def _speak_all(self) -> None:
        output = self.output
        connection, services = output.connection, output.services
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            speaker = await output.speaker(self.plan)
            try:
                await self._speak(speaker)
            finally:
                with CancelScope(shield=True):  # released even when the stream is cancelled
                    await speaker.lease.release()
        except BragiError as exc:
            failure = exc
            await connection.fail(exc)
        except ConnectionError as exc:
            failure = exc
        except asyncio.CancelledError as exc:  # the connection ended before the stream did
            failure = exc
            raise
        except Exception as exc:  # an engine failing in its own way: an error, not silence
            failure = exc
            log.exception("Wyoming synthesis for %s failed", connection.peer)
            await connection.fail(internal_error())
        finally:
            services.record(ROUTE, self.plan.alias, status_of(failure), started)

    async def _speak(self, speaker: _Speaker) -> None:
        send, rate = self.output.connection.send, speaker.rate
        seconds = 0.0
        while (sentence := await self.sentences.get()) is not None:
            async with contextlib.aclosing(speaker.pcm(sentence)) as pieces:
                started = False
                async for pcm in pieces:
                    await send(*([audio_start(rate)] if not started else []), *_chunks(rate, pcm))
                    started = True
                    seconds += len(pcm) / 2 / rate
                if started:
                    await send(audio_stop())
        if seconds == 0:  # nothing to say: still one (empty) block, for the WAV header
            await send(audio_start(rate), audio_stop())
        await send(Event("synthesize-stopped"))
        self.output.services.metrics.audio_seconds.labels(self.plan.alias, "out").inc(seconds)
