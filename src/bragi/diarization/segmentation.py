"""pyannote segmentation, window by window: which of a few *local* speakers talks in each
frame (about 17 ms) of each 10 s window.

The model scores a powerset of speaker classes per frame (nobody, one of three speakers,
two at once); the likeliest class becomes one on/off track per local speaker. Local
speakers are only consistent within their window: linking them to the same person across
windows is the clustering's job (:mod:`bragi.diarization.clustering`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bragi.audio.types import Samples
from bragi.diarization.onnx_models import SegmentationModel
from bragi.errors import EngineError

__all__ = ["Segmenter", "WindowActivity", "powerset_mapping", "window_starts"]

_BATCH = 8  # windows per model call: batching halves the cost per window on a CPU


@dataclass(frozen=True, slots=True)
class WindowActivity:
    """One window: its first sample, and per frame which local speakers talk."""

    start: int
    active: NDArray[np.bool_]  # (frames, local speakers)


def powerset_mapping(num_speakers: int, max_together: int) -> NDArray[np.bool_]:
    """Class -> speakers, in pyannote's order: nobody, each speaker, each pair, ..."""
    rows = [
        [speaker in group for speaker in range(num_speakers)]
        for size in range(min(max_together, num_speakers) + 1)
        for group in itertools.combinations(range(num_speakers), size)
    ]
    return np.array(rows, dtype=bool)


def window_starts(total: int, window: int, step: int) -> list[int]:
    """First sample of each window: every ``step``, the last one reaching the end (a
    recording shorter than a window is one window, padded with silence)."""
    if total <= window:
        return [0]
    starts = list(range(0, total - window + 1, step))
    if starts[-1] + window < total:
        starts.append(starts[-1] + step)
    return starts


class Segmenter:
    """The segmentation model in ONNX Runtime."""

    def __init__(self, model: SegmentationModel, threads: int) -> None:
        import onnxruntime

        settings = onnxruntime.SessionOptions()
        settings.intra_op_num_threads = threads
        settings.inter_op_num_threads = 1
        # idle threads sleep instead of spinning: the segmentation runs between other work
        settings.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.model = model
        self._session: Any = onnxruntime.InferenceSession(
            str(model.path), settings, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._powerset = powerset_mapping(model.num_speakers, model.powerset_max_classes)

    def windows(self, samples: Samples, step: int) -> list[WindowActivity]:
        """Every window's activity; windows start ``step`` samples apart."""
        size = self.model.window_size
        starts = window_starts(len(samples), size, step)
        found: list[WindowActivity] = []
        for first in range(0, len(starts), _BATCH):
            batch = starts[first : first + _BATCH]
            chunks = np.zeros((len(batch), 1, size), np.float32)
            for row, start in enumerate(batch):
                piece = samples[start : start + size]
                chunks[row, 0, : len(piece)] = piece
            scores = self._run(chunks)
            found += [
                WindowActivity(start, self._powerset[np.argmax(window, axis=1)])
                for start, window in zip(batch, scores, strict=True)
            ]
        return found

    def _run(self, chunks: NDArray[np.float32]) -> NDArray[np.float32]:
        try:
            (scores,) = self._session.run(None, {self._input: chunks})
        except Exception as exc:  # onnxruntime's own exception types
            raise EngineError(f"the segmentation model failed: {exc}") from exc
        scores = np.asarray(scores)
        if scores.ndim != 3 or scores.shape[2] != len(self._powerset):
            raise EngineError(
                f"the segmentation model gave scores of shape {scores.shape}; expected "
                f"(windows, frames, {len(self._powerset)})"
            )
        return scores

    def close(self) -> None:
        self._session = None
