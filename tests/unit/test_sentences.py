"""Cutting text into the pieces a TTS engine streams, one sentence at a time."""

# CJK full-width punctuation is what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

import re

import pytest

from bragi.backends.sentences import FIRST_MAX_CHARS, MAX_CHARS, split_sentences


def squashed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def assert_nothing_dropped(text: str, pieces: list[str]) -> None:
    assert squashed("".join(pieces)) == squashed(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three? Four… Five", ["One.", "Two!", "Three?", "Four…", "Five"]),
        ("Wait... What?! Yes.", ["Wait...", "What?!", "Yes."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("(It rained.) We stayed in.", ["(It rained.)", "We stayed in."]),
        (
            "今日は晴れです。明日は雨でしょう！本当？はい。",
            ["今日は晴れです。", "明日は雨でしょう！", "本当？", "はい。"],
        ),
        ("你好。我很好！", ["你好。", "我很好！"]),
        ("「行こう。」と彼は言った。", ["「行こう。」", "と彼は言った。"]),
        ("A heading\nA line\n\n\nThe end.", ["A heading", "A line", "The end."]),
        ("Windows\r\nline endings\r\n", ["Windows", "line endings"]),
    ],
)
def test_cuts_at_sentence_ends_and_line_breaks(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Dr. Smith met Mr. Jones and Mrs. Brown.",
        "Use a fruit, e.g. an apple, or a nut, i.e. a seed.",
        "Compare apples vs. pears in Fig. 3 now.",
        "J. R. R. Tolkien wrote it.",
        "Apples, pears, etc. and so on.",
        "Well… maybe so.",
        "It costs 3.50 dollars, v1.2.3 of the app, at example.com today.",
    ],
)
def test_does_not_cut_after_abbreviations_initials_or_inside_numbers(text: str) -> None:
    assert split_sentences(text) == [text]


def test_a_sentence_ending_in_i_is_still_a_sentence() -> None:
    assert split_sentences("So am I. Then we left.") == ["So am I.", "Then we left."]


@pytest.mark.parametrize("text", ["", "   ", "\n\n", " \t \n "])
def test_blank_text_gives_no_pieces(text: str) -> None:
    assert split_sentences(text) == []


def test_long_sentences_are_cut_at_clauses_within_the_limit() -> None:
    text = ", ".join(f"clause number {i} of a very long sentence" for i in range(40)) + "."
    pieces = split_sentences(text)
    assert len(pieces) > 2
    assert all(len(p) <= MAX_CHARS for p in pieces)
    assert all(p.endswith((",", ".")) for p in pieces)  # every cut falls at a comma
    assert_nothing_dropped(text, pieces)


def test_the_first_piece_is_short_for_a_quick_first_audio() -> None:
    first = "This opening sentence runs on, and on, and on, " * 4 + "until it stops."
    text = f"{first} A second sentence."
    pieces = split_sentences(text)
    assert len(first) > FIRST_MAX_CHARS
    assert len(pieces[0]) <= FIRST_MAX_CHARS
    assert pieces[0].endswith(",")
    assert pieces[-1] == "A second sentence."
    assert_nothing_dropped(text, pieces)


def test_a_short_first_sentence_is_left_whole() -> None:
    assert split_sentences("Hi. " + "Word " * 30) == ["Hi.", ("Word " * 30).strip()]


def test_clauses_without_punctuation_are_cut_between_words() -> None:
    text = " ".join(f"word{i}" for i in range(200))
    pieces = split_sentences(text, max_chars=50, first_max_chars=50)
    assert all(len(p) <= 50 for p in pieces)
    assert " ".join(pieces) == text  # words are never split


def test_an_unbroken_run_is_sliced_without_inserting_spaces() -> None:
    url = "https://example.com/" + "a" * 700
    pieces = split_sentences(f"See {url} now")
    assert all(len(p) <= MAX_CHARS for p in pieces)
    assert url in "".join(pieces)  # sliced, with no space put inside
    assert_nothing_dropped(f"See {url} now", pieces)


def test_cjk_without_spaces_is_cut_at_commas_and_rejoined_without_spaces() -> None:
    text = "我们今天去公园，" * 60 + "然后回家。"
    pieces = split_sentences(text)
    assert all(len(p) <= MAX_CHARS for p in pieces)
    assert all(" " not in p for p in pieces)
    assert "".join(pieces) == text


@pytest.mark.parametrize("limits", [(10, 5), (40, 100), (300, 100), (1, 1)])
def test_never_drops_text(limits: tuple[int, int]) -> None:
    text = (
        "Dr. Who?  Yes!\n\nA list:\n- one, two; three — four\n"
        + "x" * 120
        + " 終わり。次、そして、最後！ Fin…"
    )
    pieces = split_sentences(text, max_chars=limits[0], first_max_chars=limits[1])
    assert all(p and p == p.strip() for p in pieces)
    assert all(len(p) <= limits[0] for p in pieces)
    assert_nothing_dropped(text, pieces)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        split_sentences("text", max_chars=0)
