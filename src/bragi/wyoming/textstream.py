"""Cutting text that arrives in fragments (``synthesize-chunk``) into sentences.

Fragments end anywhere, mid-word included ("The weather ", "is sun", "ny. Tomo"). A
sentence is handed out once the text after it has begun, or as soon as it ends in
sentence punctuation followed by whitespace (CJK punctuation needs none), so the first
sentence is spoken while the rest is still being written. The cuts are those of
:func:`bragi.backends.sentences.split_sentences`; the first sentence of a reply is kept
short (``FIRST_MAX_CHARS``) for a quick first audio.
"""

from __future__ import annotations

from bragi.backends.sentences import FIRST_MAX_CHARS, MAX_CHARS, split_sentences

__all__ = ["SentenceBuffer"]

#: A capital letter put after the text to ask the splitter whether the text ends a
#: sentence (it honours abbreviations and initials: "Dr. " does not).
_PROBE = "X"


class SentenceBuffer:
    """Text in, whole sentences out."""

    def __init__(self) -> None:
        self._text = ""
        self._first = True

    @property
    def pending(self) -> str:
        """Text not handed out yet."""
        return self._text

    def add(self, text: str) -> list[str]:
        """Append a fragment; the sentences it completed."""
        self._text += text
        return self._take(final=False)

    def flush(self) -> list[str]:
        """The rest of the text, as sentences (at the end of the stream)."""
        return self._take(final=True)

    def _take(self, *, final: bool) -> list[str]:
        first_max = FIRST_MAX_CHARS if self._first else MAX_CHARS
        pieces = split_sentences(self._text, first_max_chars=first_max)
        if final or (pieces and self._ends_sentence(pieces, first_max)):
            ready, self._text = pieces, ""
        elif len(pieces) > 1:
            # Keep the last (maybe unfinished) piece, with the whitespace after it.
            ready, last = pieces[:-1], pieces[-1]
            stripped = self._text.rstrip()
            if stripped.endswith(last):
                self._text = self._text[len(stripped) - len(last) :]
            else:  # never expected: the pieces are slices of the text; speak it all later
                ready = []
        else:
            ready = []
        if ready:
            self._first = False
        return ready

    def _ends_sentence(self, pieces: list[str], first_max: int) -> bool:
        probe = split_sentences(self._text + _PROBE, first_max_chars=first_max)
        return len(probe) == len(pieces) + 1 and probe[-1] == _PROBE
