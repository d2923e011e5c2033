"""A transcription session's configuration: what ``session.update`` (GA) and
``transcription_session.update`` (beta) may say, merged into one effective config, and
rendered back in either shape.

Only the fields present in an update change it; ``turn_detection: null`` turns VAD off
and ``noise_reduction: null`` turns noise reduction off. Fields OpenAI's clients send
that Bragi cannot honour but that do not change the text (``noise_reduction``,
``create_response``, ``idle_timeout_ms``) are accepted and echoed; unknown fields are
refused (``unknown_parameter``), as OpenAI does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bragi.errors import InvalidRequestError
from bragi.languages import language_code
from bragi.realtime.formats import PCM_RATES, InputFormat
from bragi.realtime.turn_detection import EAGERNESS_SILENCE_MS, VadParameters

__all__ = [
    "LOGPROBS",
    "BetaSession",
    "GaSession",
    "SessionConfig",
    "TurnDetection",
    "parse_session",
    "render_beta",
    "render_ga",
    "validation_error",
]

LOGPROBS = "item.input_audio_transcription.logprobs"
Delay = Literal["minimal", "low", "medium", "high", "xhigh"]
Eagerness = Literal["low", "medium", "high", "auto"]
_BETA_FORMATS: dict[str, InputFormat] = {
    "pcm16": InputFormat("audio/pcm", 24_000),
    "g711_ulaw": InputFormat("audio/pcmu", 8_000),
    "g711_alaw": InputFormat("audio/pcma", 8_000),
}


_UNION_TAGS = frozenset({"audio/pcm", "audio/pcmu", "audio/pcma", "server_vad", "semantic_vad"})


class _Strict(BaseModel):
    # no NaN or Infinity: echoed in session.updated they would not be JSON
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- what clients send (GA) -------------------------------------------------


class PcmFormat(_Strict):
    type: Literal["audio/pcm"]
    rate: int = 24_000


class PcmuFormat(_Strict):
    type: Literal["audio/pcmu"]


class PcmaFormat(_Strict):
    type: Literal["audio/pcma"]


class TranscriptionFields(_Strict):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    languages: list[str] | None = None
    keywords: list[str] | None = None
    delay: Delay | None = None


class ServerVad(_Strict):
    type: Literal["server_vad"]
    threshold: float | None = Field(default=None, ge=0, le=1)
    prefix_padding_ms: int | None = Field(default=None, ge=0, le=10_000)
    silence_duration_ms: int | None = Field(default=None, ge=0, le=10_000)
    create_response: bool | None = None
    interrupt_response: bool | None = None
    idle_timeout_ms: int | None = Field(default=None, ge=0)


class SemanticVad(_Strict):
    type: Literal["semantic_vad"]
    eagerness: Eagerness | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None


class NoiseReduction(_Strict):
    type: Literal["near_field", "far_field"] | None = None
    strength: float | None = Field(default=None, ge=0)


class AudioInput(_Strict):
    format: Annotated[PcmFormat | PcmuFormat | PcmaFormat, Field(discriminator="type")] | None = (
        None
    )
    transcription: TranscriptionFields | None = None
    noise_reduction: NoiseReduction | None = None
    turn_detection: Annotated[ServerVad | SemanticVad, Field(discriminator="type")] | None = None


class Audio(_Strict):
    input: AudioInput | None = None


class GaSession(_Strict):
    """``session`` of a GA ``session.update`` (a transcription session)."""

    type: Literal["transcription"] = "transcription"
    audio: Audio | None = None
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = None
    # Echoed back by clients that resend the session they were given.
    id: str | None = None
    object: str | None = None
    expires_at: int | None = None


# --- what clients send (beta) -----------------------------------------------


class BetaTranscription(_Strict):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None


class BetaTurnDetection(_Strict):
    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float | None = Field(default=None, ge=0, le=1)
    prefix_padding_ms: int | None = Field(default=None, ge=0, le=10_000)
    silence_duration_ms: int | None = Field(default=None, ge=0, le=10_000)
    eagerness: Eagerness | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None


class BetaSession(_Strict):
    """``session`` of a beta ``transcription_session.update``."""

    input_audio_format: Literal["pcm16", "g711_ulaw", "g711_alaw"] | None = None
    input_audio_transcription: BetaTranscription | None = None
    turn_detection: BetaTurnDetection | None = None
    input_audio_noise_reduction: NoiseReduction | None = None
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    client_secret: dict[str, Any] | None = None  # REST-only; meaningless on a socket


# --- the effective configuration --------------------------------------------


@dataclass(frozen=True, slots=True)
class TurnDetection:
    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    eagerness: Eagerness = "auto"
    create_response: bool | None = None
    interrupt_response: bool | None = None
    idle_timeout_ms: int | None = None

    @property
    def vad(self) -> VadParameters:
        silence = self.silence_duration_ms
        if self.type == "semantic_vad":
            silence = EAGERNESS_SILENCE_MS[self.eagerness]
        return VadParameters(self.threshold, self.prefix_padding_ms, silence)


_DEFAULT_FORMAT = InputFormat()
_DEFAULT_TURNS = TurnDetection()


@dataclass(frozen=True, slots=True)
class SessionConfig:
    model: str
    format: InputFormat = _DEFAULT_FORMAT
    language: str | None = None
    prompt: str = ""
    languages: tuple[str, ...] | None = None
    keywords: tuple[str, ...] | None = None
    delay: Delay | None = None
    turn_detection: TurnDetection | None = _DEFAULT_TURNS
    noise_reduction: NoiseReduction | None = None
    include: tuple[str, ...] | None = None

    @property
    def logprobs(self) -> bool:
        return bool(self.include) and LOGPROBS in (self.include or ())

    @property
    def transcribe_language(self) -> str | None:
        """The language to decode in: the one given, or the only one of ``languages``."""
        if self.language:
            return self.language
        return self.languages[0] if self.languages and len(self.languages) == 1 else None

    @property
    def transcribe_prompt(self) -> str | None:
        """The prompt, with ``keywords`` after it (Whisper's prompt guides spelling)."""
        parts = [self.prompt] if self.prompt else []
        if self.keywords:
            parts.append(", ".join(self.keywords))
        return " ".join(parts) or None


def _code(value: str, param: str) -> str:
    code = language_code(value)
    if code is None:
        raise InvalidRequestError(
            f"Invalid value for '{param}': unknown language {value!r}; use an ISO-639-1 code "
            "such as 'en'.",
            param=param,
            code="invalid_value",
        )
    return code


def _format(given: PcmFormat | PcmuFormat | PcmaFormat) -> InputFormat:
    if isinstance(given, PcmFormat):
        if given.rate not in PCM_RATES:
            rates = ", ".join(map(str, PCM_RATES))
            raise InvalidRequestError(
                f"Invalid value for 'session.audio.input.format.rate': {given.rate}. Supported "
                f"rates: {rates} (OpenAI takes 24000 only; the others are Bragi's extension).",
                param="session.audio.input.format.rate",
                code="invalid_value",
            )
        return InputFormat("audio/pcm", given.rate)
    return InputFormat(given.type, 8_000)


def _turn_detection(
    given: ServerVad | SemanticVad | BetaTurnDetection, current: TurnDetection | None
) -> TurnDetection:
    base = current if current is not None and current.type == given.type else None
    base = base or TurnDetection(type=given.type)
    changes = {k: v for k, v in given.model_dump(exclude_unset=True).items() if v is not None}
    return dataclasses.replace(base, **changes)


def _transcription(
    config: SessionConfig, given: TranscriptionFields | BetaTranscription, prefix: str
) -> SessionConfig:
    fields = given.model_fields_set
    changes: dict[str, Any] = {}
    if "model" in fields and given.model:
        changes["model"] = given.model
    if "language" in fields:
        language = given.language
        changes["language"] = _code(language, f"{prefix}.language") if language else None
    if "prompt" in fields:
        changes["prompt"] = given.prompt or ""
    if isinstance(given, TranscriptionFields):
        if "languages" in fields:
            languages = given.languages
            changes["languages"] = (
                tuple(_code(code, f"{prefix}.languages") for code in languages)
                if languages
                else None
            )
        if "keywords" in fields:
            changes["keywords"] = tuple(given.keywords) if given.keywords else None
        if "delay" in fields:
            changes["delay"] = given.delay
    return dataclasses.replace(config, **changes)


def _apply_ga(config: SessionConfig, session: GaSession) -> SessionConfig:
    if "include" in session.model_fields_set:
        config = dataclasses.replace(
            config, include=tuple(session.include) if session.include is not None else None
        )
    audio_input = session.audio.input if session.audio else None
    if audio_input is None:
        return config
    fields = audio_input.model_fields_set
    if "format" in fields and audio_input.format is not None:
        config = dataclasses.replace(config, format=_format(audio_input.format))
    if "transcription" in fields and audio_input.transcription is not None:
        prefix = "session.audio.input.transcription"
        config = _transcription(config, audio_input.transcription, prefix)
    if "noise_reduction" in fields:
        config = dataclasses.replace(config, noise_reduction=audio_input.noise_reduction)
    if "turn_detection" in fields:
        given = audio_input.turn_detection
        turn = None if given is None else _turn_detection(given, config.turn_detection)
        config = dataclasses.replace(config, turn_detection=turn)
    return config


def _apply_beta(config: SessionConfig, session: BetaSession) -> SessionConfig:
    fields = session.model_fields_set
    if "input_audio_format" in fields and session.input_audio_format is not None:
        config = dataclasses.replace(config, format=_BETA_FORMATS[session.input_audio_format])
    if "input_audio_transcription" in fields and session.input_audio_transcription is not None:
        prefix = "session.input_audio_transcription"
        config = _transcription(config, session.input_audio_transcription, prefix)
    if "input_audio_noise_reduction" in fields:
        config = dataclasses.replace(config, noise_reduction=session.input_audio_noise_reduction)
    if "turn_detection" in fields:
        given = session.turn_detection
        turn = None if given is None else _turn_detection(given, config.turn_detection)
        config = dataclasses.replace(config, turn_detection=turn)
    if "include" in fields:
        include = session.include
        config = dataclasses.replace(
            config, include=tuple(include) if include is not None else None
        )
    return config


def validation_error(error: ValidationError, prefix: str) -> InvalidRequestError:
    """The first problem pydantic found, as OpenAI words it (``param`` is a dotted path)."""
    first = error.errors()[0]
    # A discriminated union puts its tag in the path ("turn_detection.server_vad.threshold").
    parts = [str(part) for part in first["loc"] if part not in _UNION_TAGS]
    location = ".".join([prefix, *parts]).strip(".")
    kind = first["type"]
    if kind == "extra_forbidden":
        return InvalidRequestError(
            f"Unknown parameter: '{location}'.", param=location, code="unknown_parameter"
        )
    if kind == "missing":
        return InvalidRequestError(
            f"Missing required parameter: '{location}'.",
            param=location,
            code="missing_required_parameter",
        )
    return InvalidRequestError(
        f"Invalid value for '{location}': {first['msg']}.", param=location, code="invalid_value"
    )


def parse_session(
    config: SessionConfig, session: object, *, beta: bool, prefix: str = "session"
) -> SessionConfig:
    """``config`` with an update's ``session`` object applied (not yet checked against the
    model manager: the caller checks that the model exists and transcribes)."""
    if not isinstance(session, dict):
        raise InvalidRequestError(
            f"Invalid type for '{prefix}': expected an object.", param=prefix, code="invalid_type"
        )
    if not beta and session.get("type") == "realtime":
        raise InvalidRequestError(
            "This is a transcription session: Bragi has no conversation (speech-to-speech) "
            "sessions. Send session.type 'transcription'.",
            param=f"{prefix}.type",
            code="invalid_value",
        )
    try:
        if beta:
            return _apply_beta(config, BetaSession.model_validate(session))
        return _apply_ga(config, GaSession.model_validate(session))
    except ValidationError as exc:
        raise validation_error(exc, prefix) from None


# --- rendering --------------------------------------------------------------


def _render_format(fmt: InputFormat) -> dict[str, Any]:
    if fmt.type == "audio/pcm":
        return {"type": fmt.type, "rate": fmt.rate}
    return {"type": fmt.type}


def _render_turn(turn: TurnDetection | None, *, beta: bool) -> dict[str, Any] | None:
    if turn is None:
        return None
    rendered: dict[str, Any] = {"type": turn.type}
    if turn.type == "server_vad":
        rendered |= {
            "threshold": turn.threshold,
            "prefix_padding_ms": turn.prefix_padding_ms,
            "silence_duration_ms": turn.silence_duration_ms,
        }
        if turn.idle_timeout_ms is not None and not beta:
            rendered["idle_timeout_ms"] = turn.idle_timeout_ms
    else:
        rendered["eagerness"] = turn.eagerness
    for echoed in ("create_response", "interrupt_response"):
        if getattr(turn, echoed) is not None:
            rendered[echoed] = getattr(turn, echoed)
    return rendered


def _render_noise(noise: NoiseReduction | None) -> dict[str, Any] | None:
    return None if noise is None else noise.model_dump(exclude_none=True)


def render_ga(config: SessionConfig, session_id: str, expires_at: int) -> dict[str, Any]:
    """The full GA session object (``session.created``/``session.updated``)."""
    transcription: dict[str, Any] = {
        "model": config.model,
        "language": config.language,
        "prompt": config.prompt,
    }
    for optional in ("languages", "keywords", "delay"):
        value = getattr(config, optional)
        if value is not None:
            transcription[optional] = list(value) if isinstance(value, tuple) else value
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": session_id,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": _render_format(config.format),
                "transcription": transcription,
                "noise_reduction": _render_noise(config.noise_reduction),
                "turn_detection": _render_turn(config.turn_detection, beta=False),
            }
        },
        "include": list(config.include) if config.include is not None else None,
    }


def render_beta(config: SessionConfig, session_id: str, expires_at: int) -> dict[str, Any]:
    """The full beta transcription session (``transcription_session.created/updated``)."""
    formats = {fmt: name for name, fmt in _BETA_FORMATS.items()}
    return {
        "id": session_id,
        "object": "realtime.transcription_session",
        "expires_at": expires_at,
        "modalities": ["text"],
        "input_audio_format": formats.get(config.format, "pcm16"),
        "input_audio_transcription": {
            "model": config.model,
            "language": config.language,
            "prompt": config.prompt,
        },
        "turn_detection": _render_turn(config.turn_detection, beta=True),
        "input_audio_noise_reduction": _render_noise(config.noise_reduction),
        "include": list(config.include) if config.include is not None else None,
    }
