"""bragi.transcripts: SRT and WebVTT from segments."""

from __future__ import annotations

from bragi.backends.protocol import Segment
from bragi.transcripts import to_srt, to_vtt

SEGMENTS = [
    Segment(id=0, start=0.0, end=2.5, text=" It was the best of times,"),
    Segment(id=1, start=2.5, end=3661.0426, text="it was the worst of times. "),
]


def test_srt() -> None:
    assert to_srt(SEGMENTS) == (
        "1\n"
        "00:00:00,000 --> 00:00:02,500\n"
        "It was the best of times,\n"
        "\n"
        "2\n"
        "00:00:02,500 --> 01:01:01,043\n"
        "it was the worst of times.\n"
    )


def test_vtt() -> None:
    assert to_vtt(SEGMENTS) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:02.500\n"
        "It was the best of times,\n"
        "\n"
        "00:00:02.500 --> 01:01:01.043\n"
        "it was the worst of times.\n"
    )


def test_no_segments() -> None:
    assert to_srt([]) == ""
    assert to_vtt([]) == "WEBVTT\n"


def test_timestamps_round_to_milliseconds_and_never_wrap() -> None:
    segments = [Segment(id=0, start=0.0004, end=0.0006, text="a")]
    assert "00:00:00,000 --> 00:00:00,001" in to_srt(segments)
    long = [Segment(id=0, start=360_000.0, end=360_001.9999, text="b")]
    assert "100:00:00.000 --> 100:00:02.000" in to_vtt(long)


def test_text_cannot_break_the_cue_structure() -> None:
    segments = [
        Segment(id=0, start=1.0, end=2.0, text="first line\n\n  second line  "),
        Segment(id=1, start=2.0, end=3.0, text="   "),
        Segment(id=2, start=3.0, end=4.0, text="a --> b"),
        Segment(id=3, start=5.0, end=4.0, text="ends before it starts"),
    ]
    srt = to_srt(segments)
    cues = srt.split("\n\n")
    assert cues == [
        "1\n00:00:01,000 --> 00:00:02,000\nfirst line\nsecond line",
        "2\n00:00:03,000 --> 00:00:04,000\na -> b",
        "3\n00:00:05,000 --> 00:00:05,000\nends before it starts\n",
    ]
    assert to_vtt(segments).count(" --> ") == 3


def test_accepts_any_iterable_of_segments() -> None:
    assert to_srt(iter(SEGMENTS)) == to_srt(SEGMENTS)
    assert to_vtt(s for s in SEGMENTS) == to_vtt(SEGMENTS)
