"""Pitch-preserving tempo change for engines without (enough) native speed."""

from __future__ import annotations

import numpy as np
import pytest

from bragi.audio.speech_encoder import SpeechEncoder
from bragi.audio.tempo import TempoStretcher, stretch, tempo_stages
from bragi.audio.types import Audio

RATE = 24_000


def _tone(seconds: float, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / RATE)[int(np.argmax(spectrum))])


@pytest.mark.parametrize(
    ("factor", "stages"), [(2.0, [2.0]), (4.0, [2.0, 2.0]), (0.25, [0.5, 0.5])]
)
def test_stages_stay_in_the_filters_best_range(factor: float, stages: list[float]) -> None:
    assert tempo_stages(factor) == pytest.approx(stages)
    assert np.prod(tempo_stages(3.3)) == pytest.approx(3.3)
    with pytest.raises(ValueError):
        tempo_stages(0)


@pytest.mark.parametrize("factor", [0.25, 0.5, 1.7, 2.0, 4.0])
def test_duration_scales_and_pitch_stays(factor: float) -> None:
    stretcher = TempoStretcher(RATE, factor)
    pieces = [stretcher.process(chunk) for chunk in np.array_split(_tone(3.0), 4)]
    pieces.append(stretcher.flush())
    out = np.concatenate(pieces)
    assert out.dtype == np.float32
    assert len(out) / RATE == pytest.approx(3.0 / factor, rel=0.03)
    assert _dominant_hz(out) == pytest.approx(220.0, abs=5)


def test_one_chunk_is_stretched_whole_at_once() -> None:
    out = stretch(_tone(1.0), RATE, 2.0)  # nothing held back for a next chunk
    assert len(out) / RATE == pytest.approx(0.5, rel=0.03)


def test_speech_encoder_applies_tempo() -> None:
    import io

    import av

    encoder = SpeechEncoder("wav", RATE, tempo=2.0)
    first = encoder.feed(Audio(_tone(1.0), RATE))
    assert len(first) > 44  # the first sentence's audio goes out before the next arrives
    data = first + encoder.feed(Audio(_tone(1.0), RATE)) + encoder.finish()
    with av.open(io.BytesIO(data)) as container:
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
    assert sum(len(f) for f in frames) / RATE == pytest.approx(1.0, rel=0.05)
