"""The protocol's data, to and from JSON: segments, options, capabilities, voices, errors.

Explicit conversions of Bragi's own frozen dataclasses; unknown fields fail loudly
(a version skew between server and worker shows up as an error, not as wrong data).
Errors cross as the class names of their :class:`~bragi.errors.BragiError` ancestry, so
the server re-raises the nearest class it knows, with the same HTTP status.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from bragi import errors
from bragi.audio.types import Audio
from bragi.backends.protocol import (
    Segment,
    SttCapabilities,
    SynthesisRequest,
    TimedText,
    TranscribeOptions,
    TranscriptionInfo,
    TtsCapabilities,
    VadRequest,
    Voice,
    VoiceReference,
    Word,
)
from bragi.errors import BragiError, EngineError, RateLimitError

__all__ = [
    "PROTOCOL_VERSION",
    "audio_from_payload",
    "audio_payload",
    "decode_error",
    "encode",
    "encode_error",
    "segment",
    "stt_capabilities",
    "synthesis_header",
    "synthesis_request",
    "transcribe_options",
    "transcription_info",
    "tts_capabilities",
    "voice",
]

#: Bumped on any incompatible change; the server refuses a worker speaking another.
#: 2: synthesis requests may carry a cloned voice's reference; 3: transcription options
#: carry hotwords, candidate languages, logprobs and the request's VAD settings; 4:
#: synthesis requests carry ``instructions``, and TTS capabilities say what the engine does
#: with them (and references their timed transcripts).
PROTOCOL_VERSION = 4
_SAMPLE = np.dtype("<f4")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return encode(value)
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def encode(value: Any) -> dict[str, Any]:
    """A protocol dataclass as a JSON object."""
    return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}


def segment(data: dict[str, Any]) -> Segment:
    words = data.get("words")
    return Segment(
        **{
            **data,
            "tokens": tuple(data.get("tokens", ())),
            "words": None if words is None else tuple(Word(**word) for word in words),
        }
    )


def transcription_info(data: dict[str, Any]) -> TranscriptionInfo:
    return TranscriptionInfo(**data)


def transcribe_options(data: dict[str, Any]) -> TranscribeOptions:
    vad = data.get("vad")
    return TranscribeOptions(
        **{
            **data,
            "hotwords": tuple(data.get("hotwords", ())),
            "languages": tuple(data.get("languages", ())),
            "vad": None if vad is None else VadRequest(**vad),
        }
    )


def synthesis_header(request: SynthesisRequest) -> tuple[dict[str, Any], memoryview | bytes]:
    """The request as JSON, and the cloned voice's samples (if any) as the payload."""
    reference = request.reference
    data = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
    if reference is None:
        return data, b""
    data["reference"] = {
        "id": reference.id,
        "sample_rate": reference.audio.sample_rate,
        "transcript": reference.transcript,
        "timed_transcript": [encode(piece) for piece in reference.timed_transcript],
    }
    return data, audio_payload(reference.audio)


def synthesis_request(data: dict[str, Any], payload: bytes | bytearray = b"") -> SynthesisRequest:
    reference = data.get("reference")
    if reference is None:
        return SynthesisRequest(**data)
    cloned = VoiceReference(
        id=str(reference["id"]),
        audio=audio_from_payload(payload, int(reference["sample_rate"])),
        transcript=reference.get("transcript"),
        timed_transcript=tuple(TimedText(**piece) for piece in reference["timed_transcript"]),
    )
    return SynthesisRequest(**{**data, "reference": cloned})


def voice(data: dict[str, Any]) -> Voice:
    return Voice(**data)


def stt_capabilities(data: dict[str, Any]) -> SttCapabilities:
    languages = data.get("languages")
    return SttCapabilities(
        **{**data, "languages": None if languages is None else frozenset(languages)}
    )


def tts_capabilities(data: dict[str, Any]) -> TtsCapabilities:
    return TtsCapabilities(**{**data, "languages": frozenset(data.get("languages", ()))})


def audio_payload(audio: Audio) -> memoryview:
    """The samples as little-endian float32 bytes, without a copy when already so."""
    samples = np.ascontiguousarray(audio.samples, dtype=_SAMPLE)
    return samples.data.cast("B")


def audio_from_payload(payload: bytes | bytearray, sample_rate: int) -> Audio:
    samples = np.frombuffer(payload, dtype=_SAMPLE).astype(np.float32, copy=False)
    if not samples.flags.writeable:  # engines may work in place
        samples = samples.copy()
    return Audio(samples, sample_rate)


def encode_error(exc: BaseException) -> dict[str, Any]:
    """An error frame; a non-Bragi exception becomes an EngineError naming its type."""
    if not isinstance(exc, BragiError):
        exc = EngineError(f"{type(exc).__name__}: {exc}")
    header: dict[str, Any] = {
        "op": "error",
        "classes": [c.__name__ for c in type(exc).__mro__ if issubclass(c, BragiError)],
        "message": exc.message,
        "param": exc.param,
        "code": exc.code,
    }
    if isinstance(exc, RateLimitError):
        header["retry_after"] = exc.retry_after
    return header


def _known_class(names: list[str]) -> type[BragiError]:
    for name in names:
        found = getattr(errors, name, None) if name in errors.__all__ else None
        if isinstance(found, type) and issubclass(found, BragiError):
            return found
    return EngineError


def decode_error(header: dict[str, Any]) -> BragiError:
    """The error an error frame describes, as the nearest class ``bragi.errors`` has."""
    cls = _known_class(list(header.get("classes", [])))
    message = str(header.get("message", "the worker failed"))
    param = header.get("param")
    if issubclass(cls, RateLimitError):
        return cls(message, param=param, retry_after=int(header.get("retry_after", 1)))
    return cls(message, param=param, code=header.get("code"))
