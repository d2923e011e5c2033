"""What a turn is: one stretch of a session's audio that becomes one conversation item,
what its commit hands the decoder, and what the decoder tells the session."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from bragi.audio.types import Samples
from bragi.backends.protocol import Segment, SpeechStream
from bragi.errors import BragiError
from bragi.models.manager import Lease
from bragi.realtime.deltas import DeltaText
from bragi.realtime.session_config import SessionConfig

__all__ = ["Decoded", "EngineStream", "FinalJob", "Turn", "TurnListener"]


@dataclass(eq=False)
class EngineStream:
    lease: Lease
    stream: SpeechStream
    fed_to: int  # sample index the stream has been fed up to


@dataclass(eq=False)
class Turn:
    """One stretch of the session's audio that becomes one item."""

    item_id: str
    start: int  # first sample (prefix padding included)
    speech_at: int | None = None  # where the VAD heard speech begin (else: start)
    previous_item_id: str | None = None  # set at commit
    deltas: DeltaText = field(default_factory=DeltaText)
    pause_at: int | None = None  # where the silence now being timed began (VAD)
    committed: bool = False
    abandoned: bool = False
    stream: EngineStream | None = None
    no_partials: bool = False  # a partial failed, or no engine stream: just decode it whole


@dataclass(eq=False)
class FinalJob:
    turn: Turn
    audio: Samples  # the committed audio, [turn.start, end)
    end: int
    speech_end: int | None  # where speech stopped (VAD): a decode to here is the whole turn
    config: SessionConfig
    committed_at: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True, slots=True)
class Decoded:
    turn: Turn
    start: int
    end: int
    config: SessionConfig
    segments: list[Segment]

    @property
    def text(self) -> str:
        return "".join(segment.text for segment in self.segments).strip()


class TurnListener(Protocol):
    """The session: told what to send."""

    def on_delta(self, turn: Turn, delta: str) -> None: ...

    def on_completed(
        self, turn: Turn, transcript: str, seconds: float, logprobs: list[dict[str, Any]] | None
    ) -> None: ...

    def on_failed(self, turn: Turn, error: BragiError) -> None: ...
