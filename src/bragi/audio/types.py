"""The one audio type that flows between decoders, engines and encoders."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Audio", "Samples"]

Samples = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Audio:
    """Mono float32 samples in [-1, 1] at ``sample_rate`` Hz."""

    samples: Samples
    sample_rate: int

    def __post_init__(self) -> None:
        if self.samples.dtype != np.float32 or self.samples.ndim != 1:
            raise ValueError("Audio samples must be a 1-D float32 array")
        if self.sample_rate <= 0:
            raise ValueError("sample_rate must be positive")

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    @classmethod
    def empty(cls, sample_rate: int) -> Audio:
        return cls(np.zeros(0, dtype=np.float32), sample_rate)
