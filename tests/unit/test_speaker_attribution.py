"""Speakers put into a transcript: labels in order of appearance, words to the turn they
overlap most, segments split where the speaker changes, and the diarized renderings."""

from __future__ import annotations

import itertools

from bragi.api.diarized import diarized_body, diarized_segments, label_verbose, speaker_subtitles
from bragi.backends.protocol import Segment, SpeakerTurn, TranscriptionInfo, Word
from bragi.diarization import SpeakerLabels, attribute_speakers
from bragi.diarization.attribution import speaker_of

TURNS = [
    SpeakerTurn(0.0, 2.0, "spk1"),
    SpeakerTurn(2.0, 4.0, "spk0"),
    SpeakerTurn(4.0, 6.0, "ann", known=True),
]


def _words(*spans: tuple[str, float, float]) -> tuple[Word, ...]:
    return tuple(Word(text, start, end) for text, start, end in spans)


def test_labels_follow_appearance_and_keep_known_names() -> None:
    labels = SpeakerLabels([*TURNS, SpeakerTurn(7, 8, "A", known=True)])
    # a known speaker named "A" keeps it, and the letters go past it
    assert [labels(s) for s in ("spk1", "spk0", "ann", "spk1", "A", "spk7")] == [
        "B",
        "C",
        "ann",
        "B",
        "A",
        "D",
    ]


def test_labels_go_on_past_z() -> None:
    labels = SpeakerLabels([])
    names = [labels(f"spk{i}") for i in range(28)]
    assert names[:2] == ["A", "B"] and names[25:] == ["Z", "AA", "AB"]
    assert len(set(names)) == 28


def test_speaker_of_a_stretch() -> None:
    assert speaker_of(1.0, 2.4, TURNS) == "spk1"  # 1 s of spk1, 0.4 s of spk0
    assert speaker_of(1.8, 2.9, TURNS) == "spk0"
    assert speaker_of(9.0, 9.5, TURNS) == "ann"  # none overlaps: the nearest
    assert speaker_of(0.0, 1.0, []) is None


def test_a_segment_is_split_at_the_word_where_the_speaker_changes() -> None:
    words = _words(("Hello", 0.2, 0.6), (" there.", 0.7, 1.5), (" Hi,", 2.3, 2.6))
    words += _words((" Ann", 2.7, 3.1), (" here.", 4.2, 4.8))
    segment = Segment(0, 0.1, 5.0, "Hello there. Hi, Ann here.", words=words)
    labels = SpeakerLabels(TURNS)
    pieces = attribute_speakers(segment, TURNS, labels)
    assert [(p.speaker, p.start, p.end, p.text) for p in pieces] == [
        ("A", 0.1, 1.5, "Hello there."),
        ("B", 2.3, 3.1, " Hi, Ann"),
        ("ann", 4.2, 5.0, " here."),
    ]
    assert all(p.source is segment for p in pieces)


def test_without_words_a_segment_goes_to_whoever_holds_most_of_it() -> None:
    pieces = diarized_segments([Segment(0, 1.5, 3.9, " Hi."), Segment(1, 4.1, 5.0, " Bye.")], TURNS)
    assert [(p.speaker, p.text) for p in pieces] == [("A", " Hi."), ("ann", " Bye.")]


def test_diarized_body_is_openais_shape() -> None:
    segments = [
        Segment(0, 0.0, 1.9, " One."),
        Segment(1, 2.1, 3.0, "  "),
        Segment(2, 2.2, 3.9, " Two."),
    ]
    usage = {"type": "duration", "seconds": 6.0}
    body = diarized_body(diarized_segments(segments, TURNS), TranscriptionInfo("en", 6.0), usage)
    assert body == {
        "task": "transcribe",
        "duration": 6.0,
        "text": "One. Two.",
        "segments": [
            {"type": "transcript.text.segment", "id": "seg_0", "start": 0.0, "end": 1.9,
             "text": "One.", "speaker": "A"},
            {"type": "transcript.text.segment", "id": "seg_1", "start": 2.2, "end": 3.9,
             "text": "Two.", "speaker": "B"},
        ],
        "usage": usage,
    }  # fmt: skip


def test_subtitles_carry_the_speaker() -> None:
    pieces = diarized_segments(
        [Segment(0, 0.0, 1.9, " One."), Segment(1, 2.2, 3.9, " Two.")], TURNS
    )
    vtt = speaker_subtitles(pieces, "vtt")
    assert vtt.startswith("WEBVTT") and "<v A>One." in vtt and "<v B>Two." in vtt
    srt = speaker_subtitles(pieces, "srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,900\nA: One.") and "B: Two." in srt


def test_verbose_json_segments_and_words_get_speakers() -> None:
    body = {
        "segments": [{"start": 0.0, "end": 1.9}, {"start": 2.1, "end": 5.5}],
        "words": [{"start": 0.1, "end": 0.5}, {"start": 4.5, "end": 5.0}],
    }
    labelled = label_verbose(body, TURNS)
    assert [s["speaker"] for s in labelled["segments"]] == ["A", "B"]
    assert [w["speaker"] for w in labelled["words"]] == ["A", "ann"]


def test_every_piece_of_a_long_talk_has_a_label() -> None:
    turns = [SpeakerTurn(t, t + 1, f"spk{t % 3}") for t in range(30)]
    segments = [Segment(i, i + 0.1, i + 0.9, f" w{i}") for i in range(30)]
    pieces = diarized_segments(segments, turns)
    assert [p.speaker for p in pieces] == list(itertools.islice(itertools.cycle("ABC"), 30))
