"""``POST /v1/audio/transcriptions`` and ``POST /v1/audio/translations``.

A request is admitted (or refused with 429) as soon as its ``model`` field is read,
before its upload when the fields come first; the upload then stays in Starlette's
spooled temporary file until it is decoded straight from there, into one array.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.datastructures import FormData

from bragi.api.deps import ApiKey, Manager
from bragi.api.diarized import (
    diarize_audio,
    diarized_body,
    diarized_segments,
    label_verbose,
    speaker_subtitles,
)
from bragi.api.forms import form_params, read_form, upload_file
from bragi.api.metrics import label_model
from bragi.api.sse import SSE_HEADERS, ending_in_an_error_event
from bragi.api.streaming import ClosingStreamingResponse
from bragi.api.transcript_stream import StreamRequest, TranscriptStream, logprobs_of
from bragi.api.transcription_request import (
    ChunkingStrategy,
    NewerTranscriptionFields,
    check_request_support,
    decode_known_speakers,
    whisper_models,
)
from bragi.audio import Audio, decode_audio
from bragi.audio.decode import is_silent
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
from bragi.diarization.availability import require_diarizer
from bragi.errors import InvalidRequestError
from bragi.languages import language_code
from bragi.models.admission import Slot
from bragi.models.manager import Lease
from bragi.transcripts import render_transcript, start_transcription

router = APIRouter(tags=["audio"])

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
#: the formats that show segment times (engines may cut coarser segments for the others)
_TIMED_FORMATS = frozenset({"srt", "verbose_json", "vtt"})


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
    model = f"Model `{params.model}`"
    check_transcription(options, engine.capabilities, model)
    if isinstance(params, TranscriptionParams):
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


Diarize = Callable[[Audio], Awaitable[list[SpeakerTurn]]]


async def _start(
    request: Request,
    manager: Manager,
    upload: _Upload[ParamsT],
    options: TranscribeOptions,
    diarize: Diarize | None = None,
) -> tuple[Lease, Iterator[Segment], TranscriptionInfo, list[SpeakerTurn] | None]:
    """Lease the model, validate against it, decode the upload, diarize it when asked,
    start decoding (lazily)."""
    params = upload.params
    try:
        lease = await manager.acquire(params.model, ModelKind.STT, slot=upload.slot)
    except BaseException:
        await upload.form.close()  # acquire gave the slot back
        raise
    turns = None
    try:
        engine = lease.engine
        if not isinstance(engine, SpeechToText):
            raise InvalidRequestError(f"Model `{params.model}` cannot transcribe.", param="model")
        if diarize is not None and engine.capabilities.word_timestamps:
            options = dataclasses.replace(options, word_timestamps=True)  # split at words
        _check_capabilities(engine, options, params, manager)
        rate, max_seconds = engine.capabilities.sample_rate, manager.settings.max_audio_minutes * 60
        file = upload_file(upload.form).file
        audio: Audio = await to_thread.run_sync(decode_audio, file, rate, max_seconds)
        await upload.form.close()  # the temporary file goes as soon as it is decoded
        if diarize is not None:
            turns = [] if is_silent(audio) else await diarize(audio)
        # by speaker runs or VAD stretches where the engine lacks word times or a VAD
        segments, info = await to_thread.run_sync(
            start_transcription, engine, audio, options, turns
        )
        request.app.state.metrics.audio_seconds.labels(params.model, "in").inc(audio.duration)
    except BaseException:
        await upload.form.close()
        await lease.release()
        raise
    return lease, segments, info, turns


async def _respond(
    request: Request,
    manager: Manager,
    upload: _Upload[ParamsT],
    options: TranscribeOptions,
    diarize: Diarize | None = None,
) -> Response:
    lease, segments, info, turns = await _start(request, manager, upload, options, diarize)
    cancel = threading.Event()
    watcher = asyncio.create_task(_cancel_on_disconnect(request, cancel))
    try:
        collected = await to_thread.run_sync(_collect, segments, cancel)
    finally:
        cancel.set()
        watcher.cancel()
        await lease.release()
    params = upload.params
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
        segment_timestamps=params.response_format in _TIMED_FORMATS and not params.stream,
    )


@router.post("/v1/audio/transcriptions", response_model=None)
async def create_transcription(request: Request, manager: Manager, _: ApiKey) -> Response:
    upload = await _receive(request, manager, TranscriptionParams)
    params = upload.params
    try:
        options = _newer_options(params, _transcription_options(params))
        diarize = await _speakers_of(params, manager)
        if params.stream and params.diarize and params.response_format not in _STREAMED:
            raise InvalidRequestError(
                "A stream sends text events; diarize=true streams with "
                "response_format=diarized_json.",
                param="stream",
            )
    except BaseException:
        await upload.discard()
        raise
    if not params.stream:
        return await _respond(request, manager, upload, options, diarize)
    lease, segments, info, turns = await _start(request, manager, upload, options, diarize)
    stream = TranscriptStream(
        lease,
        segments,
        info,
        StreamRequest(
            logprobs="logprobs" in params.include,
            languages=bool(params.languages),
            turns=turns if params.response_format == "diarized_json" or params.diarize else None,
        ),
    )
    return ClosingStreamingResponse(
        ending_in_an_error_event(stream.events()),
        on_close=stream.aclose,
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


_STREAMED = ("json", "text", "diarized_json")


async def _speakers_of(params: TranscriptionParams, manager: Manager) -> Diarize | None:
    """How to diarize this request, or None when it asks for no speakers."""
    if _wants_speakers(params, manager):
        require_diarizer(manager)
        known = await to_thread.run_sync(
            decode_known_speakers,
            params.known_speaker_names,
            params.known_speaker_references,
            16_000,
        )
        return _diarizer_for(params, manager, known)
    if params.known_speaker_names or params.num_speakers:
        raise InvalidRequestError(
            "known_speaker_names[], known_speaker_references[] and num_speakers need "
            "response_format=diarized_json (or diarize=true).",
            param="known_speaker_names" if params.known_speaker_names else "num_speakers",
        )
    return None


@router.post("/v1/audio/translations", response_model=None)
async def create_translation(request: Request, manager: Manager, _: ApiKey) -> Response:
    upload = await _receive(request, manager, TranslationParams)
    params = upload.params
    options = TranscribeOptions(
        task="translate",
        prompt=params.prompt,
        temperature=params.temperature,
        segment_timestamps=params.response_format in _TIMED_FORMATS,
    )
    return await _respond(request, manager, upload, options)
