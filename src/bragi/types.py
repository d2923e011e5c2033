"""Bragi's shared value types, underneath everything else: every package may import
them, and this module imports nothing of Bragi's.

The audio itself is :class:`bragi.audio.Audio`; the engine protocols that use these types
are in :mod:`bragi.backends.protocol` (which re-exports them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = ["Device", "ModelKind", "Segment", "TranscriptionInfo", "Word"]

#: Where an engine runs.
Device = Literal["cpu", "cuda"]


class ModelKind(StrEnum):
    STT = "stt"
    TTS = "tts"


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float
    end: float
    probability: float | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    """One decoded stretch of speech, with the ten fields OpenAI's verbose_json has."""

    id: int
    start: float
    end: float
    text: str
    seek: int = 0
    tokens: Sequence[int] = ()
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    words: Sequence[Word] | None = None


@dataclass(frozen=True, slots=True)
class TranscriptionInfo:
    language: str  # ISO 639-1 code, e.g. "en"
    duration: float  # seconds of input audio
    language_probability: float | None = None
