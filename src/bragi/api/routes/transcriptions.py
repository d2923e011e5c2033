"""``POST /v1/audio/transcriptions`` and ``POST /v1/audio/translations``."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Literal, TypeVar

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bragi.api.deps import ApiKey, Manager
from bragi.api.diarized import (
    diarize_audio,
    diarized_body,
    diarized_segments,
    label_verbose,
    speaker_subtitles,
)
from bragi.api.forms import form_params, read_form, upload_bytes
from bragi.api.sse import SSE_HEADERS
from bragi.api.transcript_formats import render_transcript
from bragi.api.transcript_stream import StreamRequest, logprobs_of, stream_transcript
from bragi.api.transcription_request import (
    ChunkingStrategy,
    NewerTranscriptionFields,
    check_request_support,
    decode_known_speakers,
    whisper_models,
)
from bragi.audio import Audio, decode_audio
from bragi.backends.checks import check_transcription
from bragi.backends.protocol import (
    KnownSpeaker,
    ModelKind,
    Segment,
    SpeakerTurn,
    SpeechToText,
    TranscribeOptions,
    TranscriptionInfo,
)
from bragi.backends.stretches import transcribe_planned
from bragi.diarization.availability import require_diarizer
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


class TranscriptionParams(NewerTranscriptionFields, _CommonParams):
    # OpenAI's diarized shape: transcriptions only
    response_format: ResponseFormat | Literal["diarized_json"] = "json"  # type: ignore[assignment]
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


def _check_capabilities(
    engine: SpeechToText, options: TranscribeOptions, params: _CommonParams, manager: Manager
) -> None:
    check_transcription(options, engine.capabilities, f"Model `{params.model}`")
    if isinstance(params, TranscriptionParams):
        model = f"Model `{params.model}`"
        check_request_support(params, engine.capabilities, model, whisper_models(manager))


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


Diarize = Callable[[Audio], Awaitable[list[SpeakerTurn]]]


async def _start(
    request: Request,
    manager: Manager,
    params: _CommonParams,
    options: TranscribeOptions,
    data: bytes,
    diarize: Diarize | None = None,
) -> tuple[Lease, Iterator[Segment], TranscriptionInfo, list[SpeakerTurn] | None]:
    """Lease the model, validate against it, decode the upload, diarize it when asked,
    start decoding (lazily)."""
    lease = await manager.acquire(params.model, ModelKind.STT)
    turns = None
    try:
        engine = lease.engine
        if not isinstance(engine, SpeechToText):
            raise InvalidRequestError(f"Model `{params.model}` cannot transcribe.", param="model")
        if diarize is not None and engine.capabilities.word_timestamps:
            options = dataclasses.replace(options, word_timestamps=True)  # split at words
        _check_capabilities(engine, options, params, manager)
        rate, max_seconds = engine.capabilities.sample_rate, manager.settings.max_audio_minutes * 60
        audio: Audio = await to_thread.run_sync(decode_audio, data, rate, max_seconds)
        if diarize is not None:
            turns = await diarize(audio)
        # by speaker runs or VAD stretches where the engine lacks word times or a VAD
        segments, info = await to_thread.run_sync(transcribe_planned, engine, audio, options, turns)
        request.app.state.metrics.audio_seconds.labels(params.model, "in").inc(audio.duration)
    except BaseException:
        await lease.release()
        raise
    return lease, segments, info, turns


async def _respond(
    request: Request,
    manager: Manager,
    params: _CommonParams,
    options: TranscribeOptions,
    data: bytes,
    diarize: Diarize | None = None,
) -> Response:
    lease, segments, info, turns = await _start(request, manager, params, options, data, diarize)
    cancel = threading.Event()
    watcher = asyncio.create_task(_cancel_on_disconnect(request, cancel))
    try:
        collected = await to_thread.run_sync(_collect, segments, cancel)
    finally:
        cancel.set()
        watcher.cancel()
        await lease.release()
    if isinstance(params, TranscriptionParams):
        return _render_newer(params, collected, info, turns)
    body, media_type = render_transcript(
        collected, info, params.response_format, options.task, options.word_timestamps
    )
    if media_type == "application/json":
        return JSONResponse(body)
    assert isinstance(body, str)
    return PlainTextResponse(body)


def _render_newer(
    params: TranscriptionParams,
    segments: list[Segment],
    info: TranscriptionInfo,
    turns: list[SpeakerTurn] | None,
) -> Response:
    """A transcription's reply, with speakers and the newer fields where asked for."""
    fmt = params.response_format
    words = "word" in params.timestamp_granularities
    usage = {"type": "duration", "seconds": round(info.duration, 3)}
    if fmt == "diarized_json":
        assert turns is not None
        return JSONResponse(diarized_body(diarized_segments(segments, turns), info, usage))
    if turns is not None and fmt in ("srt", "vtt"):
        return PlainTextResponse(speaker_subtitles(diarized_segments(segments, turns), fmt))
    body, _media_type = render_transcript(segments, info, fmt, "transcribe", words)
    if not isinstance(body, dict):
        return PlainTextResponse(body)
    if turns is not None and fmt == "verbose_json":
        body = label_verbose(body, turns)
    if "logprobs" in params.include:
        body["logprobs"] = logprobs_of(segments)
    if params.languages:
        body["languages"] = [{"code": info.language}]
    return JSONResponse(body)


def _wants_speakers(params: TranscriptionParams, manager: Manager) -> bool:
    return (
        params.response_format == "diarized_json"
        or params.diarize
        or manager.diarizes(params.model)
    )


def _newer_options(params: TranscriptionParams, options: TranscribeOptions) -> TranscribeOptions:
    languages = tuple(params.languages)
    if params.language and languages:
        raise InvalidRequestError("Send language or languages[], not both.", param="languages")
    vad = params.chunking_strategy
    return dataclasses.replace(
        options,
        language=languages[0] if len(languages) == 1 else options.language,
        languages=languages if len(languages) > 1 else (),
        hotwords=tuple(params.keywords),
        logprobs="logprobs" in params.include,
        word_timestamps=options.word_timestamps or "logprobs" in params.include,
        vad=vad.vad() if isinstance(vad, ChunkingStrategy) else None,
    )


def _diarizer_for(
    params: TranscriptionParams, manager: Manager, known: tuple[KnownSpeaker, ...]
) -> Diarize:
    async def run(audio: Audio) -> list[SpeakerTurn]:
        return await diarize_audio(manager, audio, known, params.num_speakers)

    return run


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
    options = _newer_options(params, options)
    diarize = None
    if _wants_speakers(params, manager):
        require_diarizer(manager)
        known = await to_thread.run_sync(
            decode_known_speakers,
            params.known_speaker_names,
            params.known_speaker_references,
            16_000,
        )
        diarize = _diarizer_for(params, manager, known)
    elif params.known_speaker_names or params.num_speakers:
        raise InvalidRequestError(
            "known_speaker_names[], known_speaker_references[] and num_speakers need "
            "response_format=diarized_json (or diarize=true).",
            param="known_speaker_names" if params.known_speaker_names else "num_speakers",
        )
    if not params.stream:
        return await _respond(request, manager, params, options, data, diarize)
    if params.response_format not in ("json", "text", "diarized_json") and params.diarize:
        raise InvalidRequestError(
            "A stream sends text events; diarize=true streams with response_format=diarized_json.",
            param="stream",
        )
    lease, segments, info, turns = await _start(request, manager, params, options, data, diarize)
    stream = StreamRequest(
        logprobs="logprobs" in params.include,
        languages=bool(params.languages),
        turns=turns if params.response_format == "diarized_json" or params.diarize else None,
    )
    return StreamingResponse(
        stream_transcript(lease, segments, info, stream),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


@router.post("/v1/audio/translations", response_model=None)
async def create_translation(request: Request, manager: Manager, _: ApiKey) -> Response:
    params, data = await _read_request(request, TranslationParams)
    options = TranscribeOptions(
        task="translate", prompt=params.prompt, temperature=params.temperature
    )
    return await _respond(request, manager, params, options, data)
