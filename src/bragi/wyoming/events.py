"""The Wyoming events Bragi answers: typed views of what clients send, and builders for
what Bragi sends back.

Incoming ``data`` is validated with pydantic (unknown fields ignored, as the protocol
asks: newer clients send fields older servers do not know); a bad value is a
:class:`~bragi.errors.ProtocolError` naming the event and the field.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bragi.errors import BragiError, ProtocolError
from bragi.wyoming.framing import Event

__all__ = [
    "AudioFormat",
    "AudioStartData",
    "SynthesizeChunkData",
    "SynthesizeData",
    "SynthesizeStartData",
    "TranscribeData",
    "VoiceData",
    "audio_chunk",
    "audio_start",
    "audio_stop",
    "error_event",
    "parse",
]

#: Bytes per sample Bragi reads: signed little-endian PCM, as the protocol's audio is.
SAMPLE_WIDTHS = (2, 3, 4)


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)


class AudioFormat(_Data):
    rate: int = Field(ge=1000, le=384_000)
    width: int
    channels: int = Field(ge=1, le=32)

    @field_validator("width")
    @classmethod
    def _known_width(cls, value: int) -> int:
        if value not in SAMPLE_WIDTHS:
            raise ValueError(f"width must be {', '.join(map(str, SAMPLE_WIDTHS))} bytes")
        return value

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels


class AudioStartData(AudioFormat):
    pass


class ChunkFormat(_Data):
    """An ``audio-chunk``'s format fields, each optional: a chunk that leaves them out
    is in its ``audio-start``'s format."""

    rate: int | None = None
    width: int | None = None
    channels: int | None = None


class TranscribeData(_Data):
    name: str | None = None  # a model alias
    language: str | None = None


class VoiceData(_Data):
    name: str | None = None
    language: str | None = None
    speaker: str | None = None


class SynthesizeData(_Data):
    text: str
    voice: VoiceData | None = None
    text_format: str | None = None


class SynthesizeStartData(_Data):
    voice: VoiceData | None = None
    text_format: str | None = None


class SynthesizeChunkData(_Data):
    text: str


DataT = TypeVar("DataT", bound=_Data)


def parse(model: type[DataT], event: Event) -> DataT:
    """``event.data`` as ``model``; a ProtocolError naming the field when it does not fit."""
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        field = f" {where}:" if where else ""
        raise ProtocolError(f"Event {event.type!r}:{field} {message}.") from None


# --- what Bragi sends ---------------------------------------------------------


def _format(rate: int) -> dict[str, Any]:
    return {"rate": rate, "width": 2, "channels": 1}


def audio_start(rate: int) -> Event:
    """The start of 16-bit mono audio at ``rate`` Hz (the only format Bragi sends)."""
    return Event("audio-start", _format(rate))


def audio_chunk(rate: int, pcm: bytes) -> Event:
    return Event("audio-chunk", _format(rate), pcm)


def audio_stop() -> Event:
    return Event("audio-stop")


def error_event(exc: BragiError) -> Event:
    """An ``error`` event: the message, and Bragi's error code (the OpenAI API's ``code``)."""
    data: dict[str, Any] = {"text": exc.message}
    if exc.code:
        data["code"] = exc.code
    return Event("error", data)
