"""Speaker turns from every window's vote, as pyannote reconstructs them.

Windows overlap (each instant is seen by several), so each frame of the recording gets,
per speaker, the number of windows that heard that speaker there, and a speaker count
(the windows' average number of local speakers, rounded). The frame goes to that many
speakers, the most voted first. Runs of frames become turns: gaps shorter than
``min_silence`` are closed, turns shorter than ``min_speech`` dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bragi.diarization.clustering import SpeechUnit
from bragi.diarization.segmentation import WindowActivity

__all__ = ["FrameGrid", "Turn", "speaker_turns"]


@dataclass(frozen=True, slots=True)
class Turn:
    start: float  # seconds
    end: float
    speaker: int


@dataclass(frozen=True, slots=True)
class FrameGrid:
    """Frame times: ``hop`` samples per frame at ``rate``, ``total`` samples of audio."""

    hop: float
    rate: int
    total: int

    def offset(self, window: WindowActivity) -> int:
        return round(window.start / self.hop)

    def heard(self, window: WindowActivity) -> int:
        """How many of the window's frames lie in the audio (the rest is padding)."""
        frames = len(window.active)
        return min(frames, max(0, math.ceil((self.total - window.start) / self.hop)))

    def seconds(self, frame: int) -> float:
        return min(frame * self.hop, self.total) / self.rate


def speaker_turns(
    windows: Sequence[WindowActivity],
    units: Sequence[SpeechUnit],
    labels: Sequence[int | None],
    grid: FrameGrid,
    min_speech: float,
    min_silence: float,
) -> list[Turn]:
    """Turns of each labelled speaker, in time order (overlapping speakers overlap)."""
    speakers = 1 + max((label for label in labels if label is not None), default=-1)
    if not speakers or not windows:
        return []
    length = grid.offset(windows[-1]) + len(windows[-1].active) + 1
    votes = np.zeros((length, speakers), np.int32)
    seen = np.zeros(length, np.int32)
    talking = np.zeros(length, np.int32)
    for window in windows:
        first, heard = grid.offset(window), grid.heard(window)
        seen[first : first + heard] += 1
        talking[first : first + heard] += window.active[:heard].sum(axis=1)
    for speech, label in zip(units, labels, strict=True):
        if label is None:
            continue
        window = windows[speech.window]
        frames = speech.frames[speech.frames < grid.heard(window)]
        votes[grid.offset(window) + frames, label] += 1
    count = np.floor(talking / np.maximum(seen, 1) + 0.5).astype(np.int32)
    rank = np.argsort(np.argsort(-votes, axis=1, kind="stable"), axis=1, kind="stable")
    chosen = (rank < count[:, None]) & (votes > 0)
    turns = [
        Turn(grid.seconds(start), grid.seconds(end), speaker)
        for speaker in range(speakers)
        for start, end in _runs(chosen[:, speaker], grid, min_speech, min_silence)
    ]
    return sorted(turns, key=lambda t: (t.start, t.end, t.speaker))


def _runs(
    active: NDArray[np.bool_], grid: FrameGrid, min_speech: float, min_silence: float
) -> list[tuple[int, int]]:
    """(first frame, frame after the last) of each run, short gaps closed, short runs out."""
    edges = np.diff(np.concatenate(([0], active.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    runs: list[tuple[int, int]] = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        if runs and grid.seconds(start) - grid.seconds(runs[-1][1]) < min_silence:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return [(s, e) for s, e in runs if grid.seconds(e) - grid.seconds(s) >= min_speech]
