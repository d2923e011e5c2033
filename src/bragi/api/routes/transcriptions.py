"""``POST /v1/audio/transcriptions`` and ``POST /v1/audio/translations``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Literal, TypeVar

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bragi.api.deps import ApiKey, Manager
from bragi.api.forms import form_params, read_form, upload_bytes
from bragi.api.sse import SSE_HEADERS, ending_in_an_error_event, sse_event
from bragi.api.transcript_formats import render_transcript
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
from bragi.models.manager import Lease

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


async def _read_request(request: Request, params_model: type[ParamsT]) -> tuple[ParamsT, bytes]:
    form = await read_form(request)
    try:
        params = form_params(form, params_model)
        request.state.model = params.model
        data = await upload_bytes(form)
    finally:
        await form.close()
    return params, data


async def _start(
    request: Request,
    manager: Manager,
    params: _CommonParams,
    options: TranscribeOptions,
    data: bytes,
) -> tuple[Lease, Iterator[Segment], TranscriptionInfo]:
    """Lease the model, validate against it, decode the upload, start decoding (lazily)."""
    lease = await manager.acquire(params.model, ModelKind.STT)
    try:
        engine = lease.engine
        if not isinstance(engine, SpeechToText):
            raise InvalidRequestError(f"Model `{params.model}` cannot transcribe.", param="model")
        _check_capabilities(engine, options, params.model)
        rate, max_seconds = engine.capabilities.sample_rate, manager.settings.max_audio_minutes * 60
        audio: Audio = await to_thread.run_sync(decode_audio, data, rate, max_seconds)
        segments, info = await to_thread.run_sync(engine.transcribe, audio, options)
        request.app.state.metrics.audio_seconds.labels(params.model, "in").inc(audio.duration)
    except BaseException:
        await lease.release()
        raise
    return lease, segments, info


async def _respond(
    request: Request,
    manager: Manager,
    params: _CommonParams,
    options: TranscribeOptions,
    data: bytes,
) -> Response:
    lease, segments, info = await _start(request, manager, params, options, data)
    cancel = threading.Event()
    watcher = asyncio.create_task(_cancel_on_disconnect(request, cancel))
    try:
        collected = await to_thread.run_sync(_collect, segments, cancel)
    finally:
        cancel.set()
        watcher.cancel()
        await lease.release()
    body, media_type = render_transcript(
        collected, info, params.response_format, options.task, options.word_timestamps
    )
    if media_type == "application/json":
        return JSONResponse(body)
    assert isinstance(body, str)
    return PlainTextResponse(body)


async def _stream(lease: Lease, segments: Iterator[Segment]) -> AsyncIterator[bytes]:
    pieces: list[str] = []
    try:
        while (segment := await to_thread.run_sync(next, segments, None)) is not None:
            delta = segment.text.lstrip() if not pieces else segment.text
            if not delta:
                continue
            pieces.append(delta)
            yield sse_event({"type": "transcript.text.delta", "delta": delta})
        yield sse_event({"type": "transcript.text.done", "text": "".join(pieces)})
    finally:
        _close(segments)  # a client that left stops the decoding
        await lease.release()


@router.post("/v1/audio/transcriptions", response_model=None)
async def create_transcription(request: Request, manager: Manager, _: ApiKey) -> Response:
    params, data = await _read_request(request, TranscriptionParams)
    words = "word" in params.timestamp_granularities
    if words and params.response_format != "verbose_json":
        raise InvalidRequestError(
            "timestamp_granularities[]=word needs response_format=verbose_json.",
            param="timestamp_granularities",
        )
    options = TranscribeOptions(
        task="transcribe",
        language=params.language,
        prompt=params.prompt,
        temperature=params.temperature,
        word_timestamps=words,
    )
    if not params.stream:
        return await _respond(request, manager, params, options, data)
    lease, segments, _info = await _start(request, manager, params, options, data)
    events = ending_in_an_error_event(_stream(lease, segments))
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


@router.post("/v1/audio/translations", response_model=None)
async def create_translation(request: Request, manager: Manager, _: ApiKey) -> Response:
    params, data = await _read_request(request, TranslationParams)
    options = TranscribeOptions(
        task="translate", prompt=params.prompt, temperature=params.temperature
    )
    return await _respond(request, manager, params, options, data)
