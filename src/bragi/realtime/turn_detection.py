"""Turn detection: where a person starts and stops speaking, from Silero frame by frame.

``server_vad`` as OpenAI documents it: speech starts at the first frame whose speech
probability reaches ``threshold``; it stops once ``silence_duration_ms`` of quiet frames
(below ``threshold - 0.15``, Silero's own hysteresis) have followed it. A *pause* is
reported at the first quiet frame, so decoding can begin while the silence is still
being timed. ``semantic_vad`` has no turn model in Bragi: its ``eagerness`` picks the
silence that ends a turn (see :data:`EAGERNESS_SILENCE_MS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bragi.audio.types import Samples
from bragi.backends.vad import FRAME, SileroStream
from bragi.realtime.formats import SAMPLE_RATE

__all__ = ["EAGERNESS_SILENCE_MS", "TurnDetector", "TurnSignal", "VadParameters"]

#: ``semantic_vad`` eagerness ─▶ the silence (ms) that ends a turn.
EAGERNESS_SILENCE_MS = {"high": 500, "medium": 1000, "auto": 1000, "low": 2000}


@dataclass(frozen=True, slots=True)
class VadParameters:
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500

    @property
    def prefix_samples(self) -> int:
        return self.prefix_padding_ms * SAMPLE_RATE // 1000


@dataclass(frozen=True, slots=True)
class TurnSignal:
    """``started``: speech begins at ``sample``; ``paused``: quiet from ``sample``;
    ``resumed``: speech again; ``stopped``: the turn ends at ``sample`` (silence included)."""

    kind: Literal["started", "paused", "resumed", "stopped"]
    sample: int


class TurnDetector:
    """Feeds samples to a Silero stream and reports turn signals with sample positions."""

    def __init__(self, stream: SileroStream, parameters: VadParameters, origin: int) -> None:
        self.parameters = parameters
        self._stream = stream
        self._next_frame_at = origin  # sample index where the next full frame begins
        self._low = max(parameters.threshold - 0.15, 0.01)
        self._quiet_frames_needed = max(
            1, round(parameters.silence_duration_ms * SAMPLE_RATE / 1000 / FRAME)
        )
        self.speaking = False
        self._quiet_from: int | None = None  # sample where the current quiet run began

    def feed(self, samples: Samples) -> list[TurnSignal]:
        signals: list[TurnSignal] = []
        for probability in self._stream.feed(samples).tolist():
            frame_at = self._next_frame_at
            self._next_frame_at += FRAME
            if not self.speaking:
                if probability >= self.parameters.threshold:
                    self.speaking, self._quiet_from = True, None
                    signals.append(TurnSignal("started", frame_at))
            elif probability >= self.parameters.threshold:
                if self._quiet_from is not None:
                    self._quiet_from = None
                    signals.append(TurnSignal("resumed", frame_at))
            elif probability < self._low or self._quiet_from is not None:
                if self._quiet_from is None:
                    self._quiet_from = frame_at
                    signals.append(TurnSignal("paused", frame_at))
                if self._next_frame_at - self._quiet_from >= self._quiet_frames_needed * FRAME:
                    self.speaking, self._quiet_from = False, None
                    signals.append(TurnSignal("stopped", self._next_frame_at))
        return signals

    def reset(self) -> None:
        """Forget the current speech (after a manual commit or a clear)."""
        self.speaking, self._quiet_from = False, None
