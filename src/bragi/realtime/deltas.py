"""Which text of an unfinished turn is safe to send as a ``delta``.

Clients append deltas, so a delta can never be taken back. Re-decoding a growing window
changes its last words (the window ends mid-word), so only words that two successive
hypotheses agree on are sent ("local agreement"). The final text is authoritative: what
it adds after the words already sent becomes the last delta; when it disagrees with them,
nothing more is sent and ``completed`` carries the whole transcript.
"""

from __future__ import annotations

import re

__all__ = ["DeltaText"]

_NOT_WORD = re.compile(r"[^\w']+")


def _key(word: str) -> str:
    return _NOT_WORD.sub("", word.lower())


def _agreed(first: list[str], second: list[str]) -> int:
    count = 0
    for a, b in zip(first, second, strict=False):
        if _key(a) != _key(b):
            break
        count += 1
    return count


class DeltaText:
    """The words of one item sent so far, and the last hypothesis seen."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self._previous: list[str] | None = None

    @property
    def text(self) -> str:
        return " ".join(self.sent)

    def hypothesis(self, text: str) -> str | None:
        """The delta to send for this new hypothesis, if any."""
        words = text.split()
        previous, self._previous = self._previous, words
        if previous is None:
            return None
        agreed = _agreed(previous, words)
        if agreed <= len(self.sent) or _agreed(self.sent, words) < len(self.sent):
            return None
        return self._send(words[len(self.sent) : agreed])

    def final(self, text: str) -> str | None:
        """The last delta: what the final text adds after the words already sent."""
        words = text.split()
        if _agreed(self.sent, words) < len(self.sent) or len(words) <= len(self.sent):
            return None
        return self._send(words[len(self.sent) :])

    def _send(self, words: list[str]) -> str:
        delta = (" " if self.sent else "") + " ".join(words)
        self.sent.extend(words)
        return delta
