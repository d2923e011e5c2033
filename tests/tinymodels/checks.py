"""What a test can assert about a transcript from a noise model: its shape, never its text."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bragi.backends.protocol import Segment, TranscriptionInfo

__all__ = ["assert_well_formed"]


def assert_well_formed(
    segments: Sequence[Segment],
    info: TranscriptionInfo,
    duration: float,
    *,
    words: bool,
    max_chunk: float,
) -> None:
    """Ids from 0; times inside the audio, increasing, never overlapping; words inside their
    segment and in order (or absent when the engine gave no token times)."""
    assert math.isclose(info.duration, duration, abs_tol=0.01)
    assert segments, "real speech should give at least one segment"
    previous_end = 0.0
    for index, segment in enumerate(segments):
        assert isinstance(segment, Segment) and segment.id == index
        assert isinstance(segment.text, str) and segment.text.strip()
        assert previous_end <= segment.start < segment.end <= duration + 1e-6
        assert segment.end - segment.start <= max_chunk + 1e-6
        assert all(isinstance(t, int) for t in segment.tokens) and segment.tokens
        assert math.isfinite(segment.avg_logprob) and segment.avg_logprob <= 0
        assert segment.compression_ratio > 0 and segment.temperature == 0
        assert segment.seek == round(segment.start * 100)
        previous_end = segment.end
        if not words:
            assert segment.words is None
            continue
        assert segment.words, "a timed segment has words"
        word_start = segment.start
        for word in segment.words:
            assert isinstance(word.word, str) and word.word.strip()
            assert word_start <= word.start <= word.end <= segment.end
            word_start = word.start
