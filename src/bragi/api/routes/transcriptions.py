"""``POST /v1/audio/transcriptions`` and ``POST /v1/audio/translations``.

A request is admitted (or refused with 429) as soon as its ``model`` field is read,
before its upload when the fields come first; the upload then stays in Starlette's
spooled temporary file until it is decoded straight from there, into one array.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from anyio import CancelScope, to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.datastructures import FormData

from bragi.api.deps import ApiKey, Manager
from bragi.api.forms import form_params, read_form, upload_file
from bragi.api.metrics import label_model
from bragi.api.sse import SSE_HEADERS, sse_event
from bragi.api.streaming import ClosingStreamingResponse
from bragi.audio import Audio, decode_audio
from bragi.backends.checks import check_transcription
from bragi.backends.protocol import (
    ModelKind,
    Segment,
    SpeechToText,
    TranscribeOptions,
    TranscriptionInfo,
)
from bragi.errors import InvalidRequestError
from bragi.languages import language_code
from bragi.models.admission import Slot
from bragi.models.manager import Lease
from bragi.transcripts import render_transcript, start_transcription

router = APIRouter(tags=["audio"])

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]


class _CommonParams(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields we don't use

    model: str = Field(min_length=1)
    prompt: str | None = None
    response_format: ResponseFormat = "json"
    temperature: float = Field(default=0.0, ge=0.0, le=1.0)


class TranscriptionParams(_CommonParams):
    language: str | None = None
    timestamp_granularities: list[Literal["word", "segment"]] = Field(
        default_factory=lambda: list[Literal["word", "segment"]](["segment"])
    )
    stream: bool = False

    @field_validator("language")
    @classmethod
    def _iso_code(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        code = language_code(value)
        if code is None:
            raise ValueError(f"unknown language {value!r}; use an ISO-639-1 code such as 'en'")
        return code


class TranslationParams(_CommonParams):
    pass


ParamsT = TypeVar("ParamsT", bound=_CommonParams)


def _check_capabilities(engine: SpeechToText, options: TranscribeOptions, alias: str) -> None:
    check_transcription(options, engine.capabilities, f"Model `{alias}`")


async def _cancel_on_disconnect(request: Request, cancel: threading.Event) -> None:
    # The body has been read, so the next message is the client leaving.
    while not cancel.is_set():
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.set()


def _close(segments: Iterator[Segment]) -> None:
    """Stop the engine's lazy decoding now, instead of whenever the generator is collected."""
    close = getattr(segments, "close", None)
    if callable(close):
        close()


def _collect(segments: Iterator[Segment], cancel: threading.Event) -> list[Segment]:
    collected = []
    try:
        for segment in segments:
            if cancel.is_set():
                break
            collected.append(segment)
    finally:
        _close(segments)
    return collected


@dataclass
class _Upload(Generic[ParamsT]):
    """A request read so far: its parameters, its form (the audio still in a spooled
    temporary file, not in memory) and its place among the model's requests."""

    params: ParamsT
    form: FormData
    slot: Slot

    async def discard(self) -> None:
        self.slot.release()
        await self.form.close()


async def _receive(
    request: Request, manager: Manager, params_model: type[ParamsT]
) -> _Upload[ParamsT]:
    """Read the form, admitting the request (429 when the model's queue is full, 404 for
    an unknown model) as soon as its model is known: before the upload is read when the
    client sends ``model`` ahead of the file, as the OpenAI clients do."""
    admitted: dict[str, Slot] = {}

    async def admit(fields: dict[str, str]) -> None:
        if alias := fields.get("model"):
            label_model(request, manager, alias)
            admitted[alias] = await manager.admit(alias, ModelKind.STT)

    try:
        form = await read_form(request, on_file=admit)
    except BaseException:
        _release(admitted)
        raise
    try:
        params = form_params(form, params_model)
        label_model(request, manager, params.model)
        upload_file(form)  # 400 when it is missing
        slot = admitted.pop(params.model, None)
        if slot is None:  # the file came first
            slot = await manager.admit(params.model, ModelKind.STT)
    except BaseException:
        _release(admitted)
        await form.close()
        raise
    _release(admitted)  # a slot for a `model` the form then sent again, differently
    return _Upload(params, form, slot)


def _release(slots: dict[str, Slot]) -> None:
    for slot in slots.values():
        slot.release()


async def _start(
    request: Request, manager: Manager, upload: _Upload[ParamsT], options: TranscribeOptions
) -> tuple[Lease, Iterator[Segment], TranscriptionInfo]:
    """Lease the model, validate against it, decode the upload, start decoding (lazily)."""
    alias = upload.params.model
    try:
        lease = await manager.acquire(alias, ModelKind.STT, slot=upload.slot)
    except BaseException:
        await upload.form.close()  # acquire gave the slot back
        raise
    try:
        engine = lease.engine
        if not isinstance(engine, SpeechToText):
            raise InvalidRequestError(f"Model `{alias}` cannot transcribe.", param="model")
        _check_capabilities(engine, options, alias)
        rate, max_seconds = engine.capabilities.sample_rate, manager.settings.max_audio_minutes * 60
        file = upload_file(upload.form).file
        audio: Audio = await to_thread.run_sync(decode_audio, file, rate, max_seconds)
        await upload.form.close()  # the temporary file goes as soon as it is decoded
        segments, info = await to_thread.run_sync(start_transcription, engine, audio, options)
        request.app.state.metrics.audio_seconds.labels(alias, "in").inc(audio.duration)
    except BaseException:
        await upload.form.close()
        await lease.release()
        raise
    return lease, segments, info


async def _respond(
    request: Request, manager: Manager, upload: _Upload[ParamsT], options: TranscribeOptions
) -> Response:
    lease, segments, info = await _start(request, manager, upload, options)
    cancel = threading.Event()
    watcher = asyncio.create_task(_cancel_on_disconnect(request, cancel))
    try:
        collected = await to_thread.run_sync(_collect, segments, cancel)
    finally:
        cancel.set()
        watcher.cancel()
        await lease.release()
    params = upload.params
    body, media_type = render_transcript(
        collected, info, params.response_format, options.task, options.word_timestamps
    )
    if media_type == "application/json":
        return JSONResponse(body)
    assert isinstance(body, str)
    return PlainTextResponse(body)


class _SegmentStream:
    """An SSE transcription's segments and lease, let go of once, however it ends."""

    def __init__(self, lease: Lease, segments: Iterator[Segment]):
        self.lease = lease
        self.segments = segments
        self._closed = False

    async def events(self) -> AsyncIterator[bytes]:
        pieces: list[str] = []
        try:
            while (segment := await to_thread.run_sync(next, self.segments, None)) is not None:
                delta = segment.text.lstrip() if not pieces else segment.text
                if not delta:
                    continue
                pieces.append(delta)
                yield sse_event({"type": "transcript.text.delta", "delta": delta})
            yield sse_event({"type": "transcript.text.done", "text": "".join(pieces)})
        finally:
            with CancelScope(shield=True):
                await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await to_thread.run_sync(_close, self.segments)  # a client that left stops it
        finally:
            await self.lease.release()


def _transcription_options(params: TranscriptionParams) -> TranscribeOptions:
    words = "word" in params.timestamp_granularities
    if words and params.response_format != "verbose_json":
        raise InvalidRequestError(
            "timestamp_granularities[]=word needs response_format=verbose_json.",
            param="timestamp_granularities",
        )
    return TranscribeOptions(
        task="transcribe",
        language=params.language,
        prompt=params.prompt,
        temperature=params.temperature,
        word_timestamps=words,
    )


@router.post("/v1/audio/transcriptions", response_model=None)
async def create_transcription(request: Request, manager: Manager, _: ApiKey) -> Response:
    upload = await _receive(request, manager, TranscriptionParams)
    try:
        options = _transcription_options(upload.params)
    except BaseException:
        await upload.discard()
        raise
    if not upload.params.stream:
        return await _respond(request, manager, upload, options)
    lease, segments, _info = await _start(request, manager, upload, options)
    stream = _SegmentStream(lease, segments)
    return ClosingStreamingResponse(
        stream.events(), on_close=stream.aclose, media_type="text/event-stream", headers=SSE_HEADERS
    )


@router.post("/v1/audio/translations", response_model=None)
async def create_translation(request: Request, manager: Manager, _: ApiKey) -> Response:
    upload = await _receive(request, manager, TranslationParams)
    params = upload.params
    options = TranscribeOptions(
        task="translate", prompt=params.prompt, temperature=params.temperature
    )
    return await _respond(request, manager, upload, options)
