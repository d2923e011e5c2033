"""Split text into the pieces a TTS engine synthesizes one at a time.

Streaming synthesis yields one audio chunk per piece, so the first audio is ready
as soon as the first piece is spoken. Pieces are sentences, cut:

* after ``.``, ``!``, ``?`` and ``…`` followed by whitespace (closing quotes and
  brackets stay with their sentence), and after CJK ``。！？`` with or without it;
* at every line break;
* not after common abbreviations (``Dr.``, ``e.g.``), single-letter initials
  (``J. Smith``), nor before a lowercase letter (``etc. and so on``).

A sentence longer than ``max_chars`` is cut further at clause punctuation
(``,;:—`` and CJK ``，、；：``), then between words, then, for an unbroken run such as
a URL or unspaced CJK text, every ``max_chars`` characters. The first piece is
kept to ``first_max_chars`` the same way, so the time to first audio stays short.

No text is dropped: joining the pieces gives the input back, except for the
whitespace at the cuts. Whitespace-only pieces are left out.
"""

# Full-width CJK punctuation and typographic quotes are the point of this module.
# ruff: noqa: RUF001, RUF002

from __future__ import annotations

import re

__all__ = ["FIRST_MAX_CHARS", "MAX_CHARS", "split_sentences"]

#: Longest piece, in characters (about 20 s of speech).
MAX_CHARS = 300
#: Longest first piece, in characters (about 6 s of speech).
FIRST_MAX_CHARS = 100

_CLOSERS = "\"'”’)\\]»」』）"
_SENTENCE_END = re.compile(
    rf"[.!?…]+[{_CLOSERS}]*\s+"  # western marks need whitespace after them
    rf"|[。！？]+[{_CLOSERS}]*\s*"  # CJK marks do not
    r"|\s*\n\s*"  # every line break
)
_CLAUSE_END = re.compile(r"[,;:—–]\s+|[，、；：]\s*")
_WORD_END = re.compile(r"\s+")
_LAST_WORD = re.compile(r"\S+$")
_INITIAL = re.compile(r"^[A-HJ-Z]$")  # "J. Smith", but not "So am I."

_ABBREVIATIONS = frozenset(
    {
        *("mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "rev", "hon", "messrs"),
        *("gen", "col", "capt", "lt", "sgt", "mme", "mlle"),
        *("vs", "cf", "e.g", "i.e", "approx", "fig", "figs", "vol", "vols", "pp"),
        *("ed", "eds", "dept", "univ"),
        *("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    }
)


def split_sentences(
    text: str, *, max_chars: int = MAX_CHARS, first_max_chars: int = FIRST_MAX_CHARS
) -> list[str]:
    """Cut ``text`` into stripped, non-empty pieces of at most ``max_chars`` characters.

    The first piece is at most ``first_max_chars`` long (unless ``max_chars`` is
    smaller). See the module docstring for where the cuts fall.
    """
    if max_chars < 1 or first_max_chars < 1:
        raise ValueError("max_chars and first_max_chars must be positive")
    pieces: list[str] = []
    for sentence in _sentences(text):
        if not pieces and len(sentence) > first_max_chars:
            head, sentence = _split_head(sentence, first_max_chars)
            pieces.append(head)
        if sentence:
            pieces.extend(_pack(_atoms(sentence, max_chars, 0), max_chars))
    return pieces


def _sentences(text: str) -> list[str]:
    """Cut at sentence ends and line breaks; strip; drop empty pieces."""
    found: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if _is_abbreviation(text, match):
            continue
        found.append(text[start : match.end()])
        start = match.end()
    found.append(text[start:])
    return [piece for piece in (p.strip() for p in found) if piece]


def _is_abbreviation(text: str, match: re.Match[str]) -> bool:
    """Whether a period ending ``match`` belongs to an abbreviation, not a sentence end."""
    marks = match.group().rstrip()
    if "\n" in match.group() or not marks.rstrip(_CLOSERS).endswith((".", "…")):
        return False
    following = text[match.end() : match.end() + 1]
    if following.islower():
        return True
    if not marks.startswith(".") or marks.startswith(".."):
        return False
    word = _LAST_WORD.search(text, 0, match.start())
    if word is None:
        return False
    token = word.group().lstrip("([\"'“‘")
    return token.lower() in _ABBREVIATIONS or _INITIAL.match(token) is not None


def _split_head(sentence: str, limit: int) -> tuple[str, str]:
    """The longest run of atoms from the start that fits in ``limit``, and the rest."""
    atoms = _atoms(sentence, limit, 0)
    head, taken = atoms[0], 1
    while taken < len(atoms) and len((head + atoms[taken]).strip()) <= limit:
        head += atoms[taken]
        taken += 1
    return head.strip(), "".join(atoms[taken:]).strip()


def _atoms(text: str, limit: int, level: int) -> list[str]:
    """Cut ``text`` at ever finer boundaries until every atom fits in ``limit``.

    Atoms keep the whitespace that follows them, so joining them gives ``text`` back.
    """
    if len(text.strip()) <= limit:
        return [text]
    boundaries = (_CLAUSE_END, _WORD_END)
    for index in range(level, len(boundaries)):
        parts = _cut_after(text, boundaries[index])
        if len(parts) > 1:
            return [atom for part in parts for atom in _atoms(part, limit, index + 1)]
    body = text.rstrip()
    atoms = [body[i : i + limit] for i in range(0, len(body), limit)]
    atoms[-1] += text[len(body) :]
    return atoms


def _cut_after(text: str, boundary: re.Pattern[str]) -> list[str]:
    """Cut after each match of ``boundary``; the mark stays with the text before it."""
    parts: list[str] = []
    start = 0
    for match in boundary.finditer(text):
        parts.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        parts.append(text[start:])
    return parts


def _pack(atoms: list[str], limit: int) -> list[str]:
    """Join consecutive atoms greedily into pieces of at most ``limit`` characters."""
    pieces: list[str] = []
    current = ""
    for atom in atoms:
        if current and len((current + atom).strip()) > limit:
            pieces.append(current.strip())
            current = atom
        else:
            current += atom
    if current.strip():
        pieces.append(current.strip())
    return pieces
