"""Putting speakers into a transcript: each word (or, without word times, each segment) goes
to the speaker turn it overlaps most, as WhisperX does; a segment whose words change speaker
is split at that word. Overlapping speech therefore goes to the speaker who holds the word's
time longest. Anonymous speakers are named ``A``, ``B``, ... in order of appearance."""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from bragi.backends.protocol import Segment, SpeakerTurn, Word

__all__ = ["DiarizedSegment", "SpeakerLabels", "attribute_speakers", "speaker_of"]


@dataclass(frozen=True, slots=True)
class DiarizedSegment:
    """One speaker's stretch of a transcript segment (a whole segment, or part of one)."""

    start: float
    end: float
    text: str
    speaker: str  # the final label: a known name, or A, B, ...
    source: Segment
    words: tuple[Word, ...] | None = None


class SpeakerLabels:
    """Final labels, given in order of appearance: known names stay, others get letters."""

    def __init__(self, turns: Iterable[SpeakerTurn]):
        self._known = {t.speaker for t in turns if t.known}
        self._labels: dict[str, str] = {}
        self._letters = _letters()

    def __call__(self, speaker: str) -> str:
        if speaker in self._known:
            return speaker
        if speaker not in self._labels:
            label = next(self._letters)
            while label in self._known:
                label = next(self._letters)
            self._labels[speaker] = label
        return self._labels[speaker]


def _letters() -> Iterator[str]:
    yield from string.ascii_uppercase
    count = 0
    while True:  # past Z: AA, AB, ... (a long meeting)
        count += 1
        first = string.ascii_uppercase[(count - 1) // 26 % 26]
        yield first + string.ascii_uppercase[(count - 1) % 26]


def _overlap(start: float, end: float, turn: SpeakerTurn) -> float:
    return min(end, turn.end) - max(start, turn.start)


def speaker_of(start: float, end: float, turns: Sequence[SpeakerTurn]) -> str | None:
    """The speaker holding most of ``[start, end]``; the nearest turn when none overlaps."""
    if not turns:
        return None
    best = max(turns, key=lambda t: (_overlap(start, end, t), -t.start))
    if _overlap(start, end, best) > 0:
        return best.speaker
    middle = (start + end) / 2
    nearest = min(turns, key=lambda t: min(abs(t.start - middle), abs(t.end - middle)))
    return nearest.speaker


def attribute_speakers(
    segment: Segment, turns: Sequence[SpeakerTurn], labels: SpeakerLabels
) -> list[DiarizedSegment]:
    """``segment`` as one diarized segment per run of words by the same speaker."""
    words = [w for w in (segment.words or ()) if w.word.strip()]
    if not words:
        speaker = speaker_of(segment.start, segment.end, turns)
        label = labels(speaker) if speaker is not None else labels("unknown")
        return [DiarizedSegment(segment.start, segment.end, segment.text, label, segment)]
    runs: list[tuple[str, list[Word]]] = []
    for word in words:
        speaker = speaker_of(word.start, word.end, turns) or "unknown"
        if runs and runs[-1][0] == speaker:
            runs[-1][1].append(word)
        else:
            runs.append((speaker, [word]))
    pieces = []
    for index, (speaker, run) in enumerate(runs):
        start = segment.start if index == 0 else run[0].start
        end = segment.end if index == len(runs) - 1 else run[-1].end
        text = "".join(w.word for w in run)
        pieces.append(DiarizedSegment(start, end, text, labels(speaker), segment, tuple(run)))
    return pieces
