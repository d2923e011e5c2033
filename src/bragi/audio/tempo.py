"""Changing speaking speed without changing pitch, for engines with no native speed.

FFmpeg's ``atempo`` filter (WSOLA), run through PyAV's filter graph, streams: chunks in,
stretched chunks out. One ``atempo`` stage is kept within 0.5-2.0, its best-quality
range, and stages are chained for factors beyond it (0.25 = 0.5 x 0.5).
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from av.filter import Graph

from bragi.audio.types import Samples

__all__ = ["TempoStretcher", "stretch", "tempo_stages"]


def tempo_stages(factor: float) -> list[float]:
    """``factor`` as a product of factors within 0.5-2.0."""
    if factor <= 0:
        raise ValueError("tempo factor must be positive")
    stages = []
    while factor > 2.0:
        stages.append(2.0)
        factor /= 2.0
    while factor < 0.5:
        stages.append(0.5)
        factor /= 0.5
    stages.append(factor)
    return stages


class TempoStretcher:
    """Plays ``factor`` times faster (2.0 halves the duration), at the same pitch."""

    def __init__(self, sample_rate: int, factor: float):
        self._rate = sample_rate
        self._time_base = Fraction(1, sample_rate)
        self._pts = 0
        self._graph = Graph()
        node = self._graph.add_abuffer(
            format="flt", sample_rate=sample_rate, layout="mono", time_base=self._time_base
        )
        self._source = node
        for stage in tempo_stages(factor):
            stretched = self._graph.add("atempo", f"{stage:.6f}")
            node.link_to(stretched)
            node = stretched
        node.link_to(self._graph.add("abuffersink"))
        self._graph.configure()

    def process(self, samples: Samples) -> Samples:
        if len(samples) == 0:
            return np.zeros(0, dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32)[None, :], format="flt", layout="mono"
        )
        frame.sample_rate = self._rate
        frame.time_base = self._time_base
        frame.pts = self._pts
        self._pts += len(samples)
        self._graph.push(frame)
        return self._drain()

    def flush(self) -> Samples:
        self._graph.push(None)
        return self._drain()

    def _drain(self) -> Samples:
        pieces = []
        while True:
            try:
                frame = self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            pieces.append(frame.to_ndarray().reshape(-1))
        if not pieces:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(pieces).astype(np.float32, copy=False)


def stretch(samples: Samples, sample_rate: int, factor: float) -> Samples:
    """One chunk stretched on its own. The filter holds back up to a second of audio
    until more arrives, so a stream of sentences is stretched sentence by sentence to
    send each one as soon as it is ready (the pauses between them hide the seams)."""
    stretcher = TempoStretcher(sample_rate, factor)
    head = stretcher.process(samples)
    return np.concatenate([head, stretcher.flush()])
