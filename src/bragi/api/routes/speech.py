"""``POST /v1/audio/speech``.

Every parameter is checked, the model leased, the voice resolved (a built-in voice,
else a cloned one on a model that can clone) and the first sentence synthesized before
the response starts, so any problem is a proper 4xx/5xx; after that, audio goes out as
each sentence is ready, encoded incrementally.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Literal

from anyio import CancelScope, to_thread
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bragi.api.body_schemas import json_body
from bragi.api.deps import ApiKey, Manager, SettingsDep, VoiceStoreDep
from bragi.api.forms import json_params
from bragi.api.metrics import label_model
from bragi.api.routes.voices import can_use
from bragi.api.sse import SSE_HEADERS, ending_in_an_error_event, sse_event
from bragi.api.streaming import ClosingStreamingResponse
from bragi.audio import CONTENT_TYPES, Audio
from bragi.audio.speech_encoder import SpeechEncoder
from bragi.backends.protocol import ModelKind, TextToSpeech
from bragi.errors import InvalidRequestError
from bragi.models.capabilities import models_that_can
from bragi.models.manager import Lease
from bragi.speech import synthesis_plan
from bragi.voices.choose import choose_voice

router = APIRouter(tags=["audio"])

#: Audio tokens per second of output, for the SSE ``usage`` estimate.
_TOKENS_PER_SECOND = 50


class VoiceRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)


class SpeechParams(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the OpenAI schema has additionalProperties: false

    model: str = Field(min_length=1)
    input: str = Field(min_length=1, max_length=4096)
    voice: str | VoiceRef
    instructions: str | None = Field(default=None, max_length=4096)
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] = "audio"
    #: Bragi's own: the language to speak, for engines whose voices speak several (XTTS);
    #: the engine refuses one it cannot speak before any audio is sent.
    language: str | None = Field(default=None, min_length=1, max_length=35)

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("input must contain text to speak")
        return value

    @property
    def voice_name(self) -> str:
        return self.voice.id if isinstance(self.voice, VoiceRef) else self.voice


_FIRST_PIECE_SECONDS = 0.25


def _split(chunk: Audio, seconds: float) -> tuple[Audio, Audio | None]:
    """``chunk`` cut after ``seconds`` (the tail is None when there is nothing left)."""
    cut = int(seconds * chunk.sample_rate)
    if len(chunk.samples) <= cut:
        return chunk, None
    return Audio(chunk.samples[:cut], chunk.sample_rate), Audio(
        chunk.samples[cut:], chunk.sample_rate
    )


class _Synthesis:
    """One request's synthesis: engine chunks in, encoded bytes out; owns the lease."""

    def __init__(
        self,
        lease: Lease,
        first: Audio,
        chunks: Iterator[Audio],
        encoder: SpeechEncoder,
        on_done: Callable[[float], None],
    ):
        self.lease = lease
        self.on_done = on_done
        self.first: Audio | None = first
        self.chunks = chunks
        self.encoder = encoder
        self.seconds = 0.0
        self._closed = False

    def _engine_next(self) -> Audio | None:
        return next(self.chunks, None)

    async def encoded(self) -> AsyncGenerator[bytes, None]:
        upcoming: asyncio.Task[Audio | None] | None = None
        try:
            chunk, self.first = self.first, None
            if chunk is not None:
                # Time to first audio: the first quarter second is encoded and sent on
                # its own, before the engine starts on the next sentence and competes
                # with the encoder for the CPU (docs/benchmarks.md, P3).
                head, rest = _split(chunk, _FIRST_PIECE_SECONDS)
                if encoded := await to_thread.run_sync(self.encoder.feed, head):
                    yield encoded
                upcoming = asyncio.ensure_future(to_thread.run_sync(self._engine_next))
                if rest is not None and (
                    encoded := await to_thread.run_sync(self.encoder.feed, rest)
                ):
                    yield encoded
                self.seconds += chunk.duration
                chunk, upcoming = await asyncio.shield(upcoming), None
            while chunk is not None:
                # The engine synthesizes the next sentence while this one is encoded.
                upcoming = asyncio.ensure_future(to_thread.run_sync(self._engine_next))
                self.seconds += chunk.duration
                if encoded := await to_thread.run_sync(self.encoder.feed, chunk):
                    yield encoded
                # Shielded, so a client leaving never abandons the engine mid-sentence.
                chunk, upcoming = await asyncio.shield(upcoming), None
            if tail := self.encoder.finish():
                yield tail
        finally:
            # Shielded: when the client leaves, this runs in a cancelled scope, and the
            # engine's sentence in flight must end before its generator can be closed.
            with CancelScope(shield=True):
                if upcoming is not None:
                    await asyncio.gather(upcoming, return_exceptions=True)
                await self.aclose()

    async def aclose(self) -> None:
        """Stop the engine (a client that left), close the encoder, count the audio, give
        the lease back. Once: the body's end and the response's end both call it."""
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self.chunks, "close", None)
            if callable(close):  # in a thread: an engine may take a moment to stop
                await to_thread.run_sync(close)
            self.encoder.close()
            self.on_done(self.seconds)
        finally:
            await self.lease.release()

    async def sse_events(self, text: str) -> AsyncIterator[bytes]:
        encoded = self.encoded()
        try:
            async for piece in encoded:
                audio = base64.b64encode(piece).decode("ascii")
                yield sse_event({"type": "speech.audio.delta", "audio": audio})
        finally:
            # Closed at a yield (the client left), the audio stream inside must close
            # now, not when collected: its cleanup waits for the sentence in flight.
            with CancelScope(shield=True):
                await encoded.aclose()
        output_tokens = round(self.seconds * _TOKENS_PER_SECOND)
        usage = {
            "input_tokens": len(text),
            "output_tokens": output_tokens,
            "total_tokens": len(text) + output_tokens,
        }
        yield sse_event({"type": "speech.audio.done", "usage": usage})


@router.post(
    "/v1/audio/speech",
    response_model=None,
    # The body is read by the route (after the key check), so describe it here.
    openapi_extra=json_body(SpeechParams),
)
async def create_speech(
    request: Request,
    manager: Manager,
    settings: SettingsDep,
    store: VoiceStoreDep,
    key: ApiKey,
) -> StreamingResponse:
    params = json_params(await request.body(), SpeechParams)
    label_model(request, manager, params.model)
    lease = await manager.acquire(params.model, ModelKind.TTS)
    try:
        engine = lease.engine
        if not isinstance(engine, TextToSpeech):
            raise InvalidRequestError(f"Model `{params.model}` cannot speak.", param="model")
        voice, reference = await to_thread.run_sync(
            choose_voice,
            params.voice_name,
            params.model,
            engine,
            settings.voices,
            store,
            lambda: models_that_can(manager.models(), "cloning", manager.registry),
            can_use(key),
        )
        job, tempo = synthesis_plan(
            params.input,
            voice,
            params.speed,
            engine,
            reference,
            params.language,
            params.instructions,
        )
        chunks = await to_thread.run_sync(engine.synthesize, job)
        first = await to_thread.run_sync(next, chunks, None)
        if first is None:
            raise InvalidRequestError("The input contains nothing to speak.", param="input")
        encoder = SpeechEncoder(params.response_format, engine.capabilities.sample_rate, tempo)
        counter = request.app.state.metrics.audio_seconds.labels(params.model, "out")
        synthesis = _Synthesis(lease, first, chunks, encoder, counter.inc)
    except BaseException:
        await lease.release()
        raise
    if params.stream_format == "sse":
        return ClosingStreamingResponse(
            ending_in_an_error_event(synthesis.sse_events(params.input)),
            on_close=synthesis.aclose,
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    return ClosingStreamingResponse(
        synthesis.encoded(),
        on_close=synthesis.aclose,
        media_type=CONTENT_TYPES[params.response_format],
    )
