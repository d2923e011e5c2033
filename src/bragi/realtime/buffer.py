"""A session's input audio: 16 kHz samples addressed by their index since the session began."""

from __future__ import annotations

import numpy as np

from bragi.audio.types import Samples
from bragi.realtime.formats import SAMPLE_RATE

__all__ = ["AudioBuffer", "milliseconds"]


def milliseconds(sample: int) -> int:
    """A sample index as OpenAI's ``audio_start_ms``/``audio_end_ms`` count it."""
    return sample * 1000 // SAMPLE_RATE


class AudioBuffer:
    """The samples from ``start`` (inclusive) to ``end`` (exclusive); ``end`` counts every
    sample the session ever received, so positions stay valid as old audio is dropped."""

    def __init__(self) -> None:
        self._chunks: list[Samples] = []
        self.start = 0
        self.end = 0

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def seconds(self) -> float:
        return len(self) / SAMPLE_RATE

    def append(self, samples: Samples) -> None:
        if len(samples):
            self._chunks.append(samples)
            self.end += len(samples)

    def slice(self, start: int, end: int) -> Samples:
        """A copy of the samples in [start, end), clipped to what is kept."""
        start, end = max(start, self.start), min(end, self.end)
        if end <= start:
            return np.zeros(0, dtype=np.float32)
        self._merge()
        return self._chunks[0][start - self.start : end - self.start].copy()

    def drop_before(self, index: int) -> None:
        """Forget the samples before ``index``."""
        index = min(max(index, self.start), self.end)
        if index == self.start:
            return
        self._merge()
        self._chunks = [self._chunks[0][index - self.start :].copy()] if index < self.end else []
        self.start = index

    def clear(self) -> None:
        self._chunks = []
        self.start = self.end

    def _merge(self) -> None:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
