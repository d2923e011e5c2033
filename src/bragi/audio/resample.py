"""Sample-rate conversion with soxr: whole clips and streams of TTS chunks."""

from __future__ import annotations

import numpy as np
import soxr

from bragi.audio.types import Audio, Samples

__all__ = ["StreamResampler", "resample"]

# "HQ" is soxr's default: 20-bit precision, transparent for speech, and still far
# faster than any engine produces audio. VHQ costs more for nothing audible here.
_QUALITY = "HQ"


def _as_samples(samples: Samples) -> Samples:
    """Float32, 1-D, C-contiguous, without copying when it already is."""
    out = np.ascontiguousarray(samples, dtype=np.float32)
    if out.ndim != 1:
        raise ValueError("samples must be a 1-D array")
    return out


def resample(audio: Audio, rate: int) -> Audio:
    """``audio`` at ``rate`` Hz; the same object when the rate already matches."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    if rate == audio.sample_rate:
        return audio
    if len(audio.samples) == 0:
        return Audio.empty(rate)
    out = soxr.resample(_as_samples(audio.samples), audio.sample_rate, rate, quality=_QUALITY)
    return Audio(np.asarray(out, dtype=np.float32), rate)


class StreamResampler:
    """Resample a stream of mono chunks without clicks at chunk boundaries.

    Feed chunks to :meth:`process` and call :meth:`flush` once at the end for the
    filter's tail. When the rates match, chunks pass through untouched.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError("sample rates must be positive")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(
                in_rate, out_rate, 1, dtype="float32", quality=_QUALITY
            )

    def process(self, samples: Samples) -> Samples:
        """The resampled samples that are ready; some are held back until more arrive."""
        samples = _as_samples(samples)
        if self._stream is None:
            return samples
        out: Samples = self._stream.resample_chunk(samples, last=False)
        return out

    def flush(self) -> Samples:
        """The held-back tail; the resampler is reset for a new stream afterwards."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        out: Samples = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._stream.clear()
        return out
