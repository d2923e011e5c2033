"""From local speakers to speakers: each window's local speakers are cut into *units*, the
units embedded by voice and clustered, so that one cluster is one person.

Why not sherpa-onnx's own clustering: it embeds every (window, local speaker) pair, even
a few frames of speech, and clusters the embeddings with single linkage, so one noisy
embedding close to one member of another cluster is enough to join it. And pyannote's
segmentation now and then gives one local label to two people of the same window (after
a second person spoke, a third gets the first one's label): that embedding is a blend of
two voices. Together they gave the end-to-end tests' three-voice conversation's last turn
to the wrong speaker with 6 of 40 Piper takes of its synthetic voice (Piper's speech
differs from call to call); this clustering, with none.

Here a local speaker's track is cut wherever someone else talks in between, and at
pauses (a unit is one person), only units with enough clean speech are clustered, with
centroid linkage (a unit joins a speaker's mean voice, not its nearest single member),
and the short units are then given to the most similar speaker, if similar enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bragi.diarization.linking import Vector, unit
from bragi.diarization.segmentation import WindowActivity

__all__ = ["SpeechUnit", "assign_to_nearest", "cluster_voices", "speech_units"]

Frames = NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class SpeechUnit:
    """One local speaker's stretch of one window that nobody else interrupts."""

    window: int  # index of the window
    frames: Frames  # the window's frames where the speaker talks, overlapped ones too
    clean: Frames  # the frames where only this speaker talks (what is embedded)


def speech_units(windows: list[WindowActivity], pause: int | None = None) -> list[SpeechUnit]:
    """Every local speaker's track, cut wherever another local speaker talks in a gap,
    and at every pause longer than ``pause`` frames."""
    units: list[SpeechUnit] = []
    for index, window in enumerate(windows):
        active = window.active
        talking = active.sum(axis=1)
        for speaker in range(active.shape[1]):
            frames = np.flatnonzero(active[:, speaker])
            if not len(frames):
                continue
            others = np.cumsum(talking - active[:, speaker] > 0)  # others' frames so far
            interrupted = others[frames[1:] - 1] - others[frames[:-1]] > 0
            if pause is not None:
                interrupted |= np.diff(frames) > pause
            for run in np.split(frames, np.flatnonzero(interrupted) + 1):
                units.append(SpeechUnit(index, run, run[talking[run] == 1]))
    return units


def cluster_voices(
    embeddings: NDArray[np.float32],
    weights: NDArray[np.float64],
    threshold: float,
    count: int | None = None,
) -> NDArray[np.intp]:
    """Agglomerative clustering with centroid linkage on cosine similarity: the two
    clusters whose weighted mean voices are closest merge first, until ``count`` remain,
    or (without ``count``) until the closest pair is ``threshold`` or more apart in
    cosine distance. Returns a cluster number (0, 1, ... in order of first unit) per row."""
    total = len(embeddings)
    if total == 0:
        return np.zeros(0, np.intp)
    sums = embeddings.astype(np.float64) * weights[:, None]
    centroids = np.stack([unit(row) for row in sums]).astype(np.float64)
    similarity = centroids @ centroids.T
    np.fill_diagonal(similarity, -np.inf)
    owner = np.arange(total)
    alive = total
    floor = 1.0 - threshold
    while alive > max(count or 1, 1):
        best = int(np.argmax(similarity))
        a, b = divmod(best, total)
        if count is None and similarity[a, b] < floor:
            break
        a, b = min(a, b), max(a, b)
        sums[a] += sums[b]
        owner[owner == b] = a
        centroids[a] = unit(sums[a])
        similarity[b, :] = similarity[:, b] = -np.inf
        row = centroids @ centroids[a]
        row[owner != np.arange(total)] = -np.inf  # merged-away rows stay out
        row[a] = -np.inf
        similarity[a, :] = similarity[:, a] = row
        alive -= 1
    _, labels = np.unique(owner, return_inverse=True)  # roots in order of first unit
    return np.asarray(labels, np.intp)


def assign_to_nearest(
    embedding: Vector, centroids: NDArray[np.float32], least_similarity: float
) -> int | None:
    """The cluster whose centroid is most similar to ``embedding``, if at least
    ``least_similarity``."""
    if not len(centroids):
        return None
    similarity = centroids @ embedding
    best = int(np.argmax(similarity))
    return best if similarity[best] >= least_similarity else None
