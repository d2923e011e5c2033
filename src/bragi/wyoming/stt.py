"""Speech to text over Wyoming: ``transcribe``, ``audio-start``, ``audio-chunk``*,
``audio-stop`` in; ``transcript`` out.

Audio comes at any rate, width and channel count; it is made mono and resampled to the
engine's rate at ``audio-stop``, then goes through the model manager like an HTTP
transcription (same lease, keep-alive, concurrency limit). With
``wyoming.transcript_streaming`` (the default) each decoded segment is sent as a
``transcript-chunk`` between ``transcript-start`` and ``transcript-stop``; the final
``transcript`` always comes before ``transcript-stop``, so clients that only know
``transcript`` (Home Assistant 2026.2) read that and nothing else changes for them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bragi.audio import resample
from bragi.backends.checks import check_transcription
from bragi.backends.protocol import (
    ModelKind,
    Segment,
    SpeechToText,
    TranscribeOptions,
    TranscriptionInfo,
)
from bragi.errors import InvalidRequestError
from bragi.wyoming.events import AudioStartData, ChunkFormat, TranscribeData, parse
from bragi.wyoming.framing import Event
from bragi.wyoming.outcome import status_of
from bragi.wyoming.threads import in_thread
from bragi.wyoming.utterance import Utterance

if TYPE_CHECKING:
    from bragi.wyoming.connection import Connection

__all__ = ["ROUTE", "SpeechInput"]

#: The route label of Wyoming transcriptions in Bragi's request metrics.
ROUTE = "wyoming/transcribe"


def _close(segments: Iterator[Segment]) -> None:
    close = getattr(segments, "close", None)
    if callable(close):
        close()


class SpeechInput:
    """The speech-to-text side of one connection: at most one command at a time."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.services = connection.services
        self.request: TranscribeData | None = None
        self.utterance: Utterance | None = None

    async def on_transcribe(self, event: Event) -> None:
        request = parse(TranscribeData, event)
        self.services.chooser.stt_model(request.name, request.language)  # refuse it now
        await self.connection.speech_out.settle()
        self.request, self.utterance = request, None

    async def on_audio_start(self, event: Event) -> None:
        audio_format = parse(AudioStartData, event)
        await self.connection.speech_out.settle()
        self.utterance = Utterance(audio_format, self.services.settings)

    async def on_audio_chunk(self, event: Event) -> None:
        declared = parse(ChunkFormat, event)
        if self.utterance is None:  # no audio-start: the chunk's own format starts one
            await self.on_audio_start(event)
        assert self.utterance is not None
        self.utterance.add(declared, event.payload)

    async def on_audio_stop(self, event: Event) -> None:
        request, utterance = self.request or TranscribeData(), self.utterance
        self.request = self.utterance = None
        alias, language = self.services.chooser.stt_model(request.name, request.language)
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            await self._transcribe(alias, language, utterance)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self.services.record(ROUTE, alias, status_of(failure), started)

    async def _transcribe(
        self, alias: str, language: str | None, utterance: Utterance | None
    ) -> None:
        connection = self.connection
        if utterance is None or utterance.seconds == 0:
            # Nothing was said: an empty transcript, as the reference servers answer.
            await connection.send(Event("transcript", {"text": ""}))
            return
        lease = await self.services.manager.acquire(alias, ModelKind.STT)
        started: list[Iterator[Segment]] = []  # closed below even if this is cancelled
        try:
            engine = lease.engine
            if not isinstance(engine, SpeechToText):
                raise InvalidRequestError(f"Model `{alias}` cannot transcribe.", param="name")
            options = TranscribeOptions(language=language)
            check_transcription(options, engine.capabilities, f"Model `{alias}`")
            rate = engine.capabilities.sample_rate

            def start() -> tuple[TranscriptionInfo, float, Segment | None]:
                # One trip to a worker thread (each costs a wake-up of the event loop, slow
                # on a busy machine): made mono, resampled, the first segment decoded.
                audio = resample(utterance.audio(), rate)
                decoding, info = engine.transcribe(audio, options)
                started.append(decoding)
                return info, audio.duration, next(decoding, None)

            info, seconds, segment = await in_thread(start)
            decoding = started[0]
            self.services.metrics.audio_seconds.labels(alias, "in").inc(seconds)
            streaming = self.services.settings.wyoming.transcript_streaming
            if streaming:
                await connection.send(Event("transcript-start", {"language": info.language}))
            pieces: list[str] = []
            while segment is not None:
                delta = segment.text if pieces else segment.text.lstrip()
                if delta:
                    pieces.append(delta)
                    if streaming:
                        await connection.send(Event("transcript-chunk", {"text": delta}))
                segment = await in_thread(next, decoding, None)
            text = "".join(pieces).strip()
            final = [Event("transcript", {"text": text, "language": info.language})]
            if streaming:
                final.append(Event("transcript-stop"))
            await connection.send(*final)
        finally:
            for decoding in started:
                _close(decoding)  # a client that left stops the decoding
            await lease.release()
