"""Speakers across blocks, and known speakers: cosine similarity between voice embeddings.

Long recordings are diarized block by block (so clustering stays small); each block's
speakers are then linked to the speakers met so far by the similarity of their mean
embeddings, and finally named after the known speakers they resemble.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["SpeakerLedger", "match_greedy", "unit"]

Vector = NDArray[np.float32]


def unit(vector: NDArray[np.floating]) -> Vector:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


def match_greedy(similarity: NDArray[np.floating], floor: float) -> dict[int, int]:
    """Row -> column pairs, one-to-one, most similar first, each at least ``floor``."""
    pairs: dict[int, int] = {}
    if similarity.size == 0:
        return pairs
    order = np.dstack(np.unravel_index(np.argsort(-similarity, axis=None), similarity.shape))[0]
    used_columns: set[int] = set()
    for row, column in order:
        value = float(similarity[row, column])
        if value < floor:
            break
        if int(row) in pairs or int(column) in used_columns:
            continue
        pairs[int(row)] = int(column)
        used_columns.add(int(column))
    return pairs


@dataclass
class _Speaker:
    total: Vector  # sum of unit embeddings, weighted by seconds of speech
    seconds: float

    @property
    def centroid(self) -> Vector:
        return unit(self.total)


@dataclass
class SpeakerLedger:
    """The speakers found so far, each with its mean voice embedding."""

    link_similarity: float
    speakers: list[_Speaker] = field(default_factory=list)

    def link(self, embeddings: list[Vector], seconds: list[float]) -> list[int]:
        """Global ids for one block's speakers: the most similar known one, else a new one."""
        ids: list[int] = []
        similarity = self._similarity(embeddings)
        pairs = match_greedy(similarity, self.link_similarity)
        for index, (embedding, duration) in enumerate(zip(embeddings, seconds, strict=True)):
            weighted = unit(embedding) * max(duration, 1e-3)
            if index in pairs:
                speaker = self.speakers[pairs[index]]
                speaker.total = speaker.total + weighted
                speaker.seconds += duration
                ids.append(pairs[index])
            else:
                self.speakers.append(_Speaker(weighted, duration))
                ids.append(len(self.speakers) - 1)
        return ids

    def merge_to(self, count: int) -> dict[int, int]:
        """Merge the most similar speakers until at most ``count`` remain; old id -> new id."""
        groups = [[index] for index in range(len(self.speakers))]
        totals = [s.total.copy() for s in self.speakers]
        while len(groups) > max(count, 1):
            centroids = np.stack([unit(t) for t in totals])
            similarity = centroids @ centroids.T
            np.fill_diagonal(similarity, -np.inf)
            first, second = (
                int(i) for i in np.unravel_index(int(np.argmax(similarity)), similarity.shape)
            )
            a, b = min(first, second), max(first, second)
            groups[a] += groups.pop(b)
            totals[a] = totals[a] + totals.pop(b)
        mapping = {old: new for new, group in enumerate(groups) for old in group}
        self.speakers = [_Speaker(t, 0.0) for t in totals]
        return mapping

    def centroids(self) -> list[Vector]:
        return [speaker.centroid for speaker in self.speakers]

    def _similarity(self, embeddings: list[Vector]) -> NDArray[np.float32]:
        if not embeddings or not self.speakers:
            return np.zeros((len(embeddings), len(self.speakers)), np.float32)
        rows = np.stack([unit(e) for e in embeddings])
        return rows @ np.stack(self.centroids()).T
