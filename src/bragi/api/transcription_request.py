"""The newer fields of OpenAI's transcription request, parsed and checked before any work.

``include[]``, ``chunking_strategy`` (``auto``, or ``server_vad`` sent as
``chunking_strategy[type]=server_vad`` and one part per parameter), ``keywords[]``,
``languages[]``, ``known_speaker_names[]`` + ``known_speaker_references[]`` (data URLs of
2-10 s of audio), and Bragi's extensions ``diarize`` (speaker labels in every format) and
``num_speakers``. Whether the chosen engine can honour them is checked against its
capabilities (:func:`check_request_support`) before the audio is decoded.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from bragi.audio import Audio, decode_audio
from bragi.backends.protocol import KnownSpeaker, SttCapabilities, VadRequest
from bragi.backends.stretches import silero_available
from bragi.errors import AudioDecodeError, InvalidRequestError, UnsupportedCapabilityError
from bragi.languages import language_code
from bragi.models.manager import ModelManager

__all__ = [
    "MAX_KNOWN_SPEAKERS",
    "ChunkingStrategy",
    "NewerTranscriptionFields",
    "check_request_support",
    "decode_known_speakers",
    "whisper_models",
]

MAX_KNOWN_SPEAKERS = 4
REFERENCE_SECONDS = (2.0, 10.0)
_TOLERANCE = 0.05  # a reference cut at 10.0 s decodes to a few ms more
_DATA_URL = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*),(?P<data>.*)$",
    re.S,
)


class ChunkingStrategy(BaseModel):
    """``server_vad``: cut the audio where the engine's voice-activity detector hears pauses."""

    model_config = {"extra": "forbid"}

    type: Literal["server_vad"]
    prefix_padding_ms: int | None = Field(default=None, ge=0, le=10_000)
    silence_duration_ms: int | None = Field(default=None, ge=0, le=10_000)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)

    def vad(self) -> VadRequest:
        return VadRequest(self.threshold, self.silence_duration_ms, self.prefix_padding_ms)


class NewerTranscriptionFields(BaseModel):
    """Mixed into the transcription parameters (``extra="ignore"`` there)."""

    include: list[Literal["logprobs"]] = Field(default_factory=list)
    chunking_strategy: Literal["auto"] | ChunkingStrategy | None = None
    keywords: list[str] = Field(default_factory=list, max_length=100)
    languages: list[str] = Field(default_factory=list, max_length=20)
    known_speaker_names: list[str] = Field(default_factory=list)
    known_speaker_references: list[str] = Field(default_factory=list)
    diarize: bool = False  # Bragi: speaker labels in verbose_json, srt and vtt too
    num_speakers: int | None = Field(default=None, ge=1, le=32)  # Bragi: if known

    @model_validator(mode="before")
    @classmethod
    def _regroup_chunking(cls, values: Any) -> Any:
        """``chunking_strategy[type]=server_vad`` parts (the openai client) into one object;
        a JSON object in one part (curl users) too."""
        if not isinstance(values, dict):
            return values
        parts = {
            k[len("chunking_strategy[") : -1]: v
            for k, v in values.items()
            if k.startswith("chunking_strategy[") and k.endswith("]")
        }
        if parts:
            values = {k: v for k, v in values.items() if not k.startswith("chunking_strategy[")}
            if "chunking_strategy" in values:
                raise ValueError("chunking_strategy is given twice")
            values["chunking_strategy"] = parts
        include = values.get("include", [])
        if isinstance(include, list) and any(item != "logprobs" for item in include):
            raise _bad("include", "the only value is 'logprobs'")
        given = values.get("chunking_strategy")
        if isinstance(given, str) and given.strip().startswith("{"):
            try:
                given = json.loads(given)
            except ValueError:
                raise _bad("chunking_strategy", "it is not valid JSON") from None
        if given is None or given == "auto":
            return values
        if not isinstance(given, dict):
            raise _bad("chunking_strategy", "use 'auto' or a server_vad object")
        try:
            values = values | {"chunking_strategy": ChunkingStrategy.model_validate(given)}
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise _bad("chunking_strategy", f"{where}: {first['msg']}") from None
        return values

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        cleaned = [k.strip() for k in value]
        if any(not k or len(k) > 100 for k in cleaned):
            raise ValueError("each keyword must be 1 to 100 characters")
        return cleaned

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        codes = []
        for given in value:
            code = language_code(given)
            if code is None:
                raise ValueError(f"unknown language {given!r}; use ISO-639-1 codes such as 'en'")
            codes.append(code)
        return list(dict.fromkeys(codes))

    @field_validator("known_speaker_names")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        names = [n.strip() for n in value]
        if len(names) > MAX_KNOWN_SPEAKERS:
            raise ValueError(f"at most {MAX_KNOWN_SPEAKERS} known speakers")
        if any(not n or len(n) > 64 for n in names):
            raise ValueError("each name must be 1 to 64 characters")
        if len(set(names)) != len(names):
            raise ValueError("names must differ")
        return names

    @model_validator(mode="after")
    def _consistent(self) -> NewerTranscriptionFields:
        if len(self.known_speaker_references) != len(self.known_speaker_names):
            raise InvalidRequestError(
                "known_speaker_names[] and known_speaker_references[] must have the same "
                f"length (got {len(self.known_speaker_names)} and "
                f"{len(self.known_speaker_references)}).",
                param="known_speaker_references",
            )
        return self


def _bad(param: str, reason: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid value for '{param}': {reason}.", param=param)


@dataclass(frozen=True, slots=True)
class _Reference:
    name: str
    data: bytes


def _data_url_bytes(name: str, url: str) -> _Reference:
    match = _DATA_URL.match(url.strip())
    if match is None or ";base64" not in (match.group("params") or ""):
        raise InvalidRequestError(
            f"The reference for {name!r} must be a data URL such as 'data:audio/wav;base64,...'.",
            param="known_speaker_references",
        )
    try:
        data = base64.b64decode(match.group("data"), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(
            f"The reference for {name!r} is not valid base64.", param="known_speaker_references"
        ) from None
    return _Reference(name, data)


def decode_known_speakers(names: list[str], urls: list[str], rate: int) -> tuple[KnownSpeaker, ...]:
    """Each reference decoded to mono ``rate`` audio and checked to last 2-10 s."""
    speakers = []
    for name, url in zip(names, urls, strict=True):
        reference = _data_url_bytes(name, url)
        try:
            audio: Audio = decode_audio(reference.data, rate, REFERENCE_SECONDS[1] + 5)
        except AudioDecodeError as exc:
            raise InvalidRequestError(
                f"The reference for {name!r} is not decodable audio: {exc.message}",
                param="known_speaker_references",
            ) from None
        shortest, longest = REFERENCE_SECONDS
        if not shortest - _TOLERANCE <= audio.duration <= longest + _TOLERANCE:
            raise InvalidRequestError(
                f"The reference for {name!r} lasts {audio.duration:.1f} s; references must "
                f"be {shortest:g} to {longest:g} seconds of audio.",
                param="known_speaker_references",
            )
        speakers.append(KnownSpeaker(name, audio))
    return tuple(speakers)


def whisper_models(manager: ModelManager) -> list[str]:
    """The configured models that take keywords[] and give logprobs (faster-whisper's)."""
    return [m.alias for m in manager.models() if m.backend_name == "faster-whisper"]


def check_request_support(
    fields: NewerTranscriptionFields,
    capabilities: SttCapabilities,
    model: str,
    able: Sequence[str] = (),
) -> None:
    """A 400 for what ``model`` (e.g. "Model `whisper-1`") cannot honour; ``able``: the
    configured models that take keywords[] and give logprobs, to name in the message."""
    instead = f" (here: {', '.join(able)})" if able else ""
    if fields.keywords and not capabilities.hotwords:
        raise UnsupportedCapabilityError(
            f"{model} cannot be biased towards keywords: keywords[] works with Whisper "
            f"models (faster-whisper){instead}. Leave it out or use one of those.",
            param="keywords",
        )
    if "logprobs" in fields.include and not capabilities.logprobs:
        raise UnsupportedCapabilityError(
            f"{model} gives no log-probabilities: include[]=logprobs works with Whisper "
            f"models (faster-whisper){instead}. Leave it out or use one of those.",
            param="include",
        )
    chunking = fields.chunking_strategy
    if isinstance(chunking, ChunkingStrategy) and not capabilities.vad and not silero_available():
        raise UnsupportedCapabilityError(
            f"{model} has no voice-activity detector of its own, and Bragi's (Silero) is not "
            "installed here: pip install 'bragi[vad]', or use chunking_strategy=auto.",
            param="chunking_strategy",
        )
    spoken = capabilities.languages
    if spoken:
        unknown = [code for code in fields.languages if code not in spoken]
        if unknown:
            raise UnsupportedCapabilityError(
                f"{model} does not support language(s) {', '.join(unknown)}; supported: "
                f"{', '.join(sorted(spoken))}.",
                param="languages",
            )
