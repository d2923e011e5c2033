"""The diarization pipeline on audio whose answer is known: tiny models in sherpa-onnx's
formats that hear two tones as two voices (tests/tinymodels/diarization.py), loaded by the
real backend; and the clustering, units and turns on their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bragi.audio import Audio
from bragi.backends.protocol import DiarizeOptions, KnownSpeaker, SpeakerDiarizer
from bragi.diarization.backend import BACKEND, DiarizationOptions
from bragi.diarization.clustering import cluster_voices, speech_units
from bragi.diarization.engine import Diarizer, _block_bounds
from bragi.diarization.segmentation import WindowActivity, powerset_mapping, window_starts
from bragi.diarization.turns import FrameGrid, speaker_turns
from bragi.errors import EngineError, InvalidRequestError
from tinymodels.diarization import HIGH_HZ, LOW_HZ, RATE, tone, write_embedding, write_segmentation

Parts = list[tuple[str, float]]  # ("low" | "high" | "gap", seconds)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-diarizer")
    write_segmentation(folder)
    write_embedding(folder)
    return folder


def _load(model_dir: Path, **options: float) -> Diarizer:
    return BACKEND.load(model_dir, "cpu", DiarizationOptions(**options))


@pytest.fixture(scope="module")
def diarizer(model_dir: Path) -> Iterator[Diarizer]:
    engine = _load(model_dir)
    yield engine
    engine.close()


def _talk(parts: Parts) -> tuple[Audio, list[tuple[str, float, float]]]:
    """The parts one after another, and the truth: (voice, start, end) of each tone."""
    pieces, truth, position = [], [], 0.0
    for voice, seconds in parts:
        if voice == "gap":
            pieces.append(np.zeros(int(seconds * RATE), np.float32))
        else:
            pieces.append(tone(LOW_HZ if voice == "low" else HIGH_HZ, seconds))
            truth.append((voice, position, position + seconds))
        position += seconds
    return Audio(np.concatenate(pieces), RATE), truth


def _check(turns: list, truth: list[tuple[str, float, float]], tolerance: float = 0.05) -> None:
    """One turn per true turn, times within ``tolerance``, one speaker per voice."""
    assert len(turns) == len(truth), turns
    voices: dict[str, str] = {}
    for turn, (voice, start, end) in zip(turns, truth, strict=True):
        assert turn.start == pytest.approx(start, abs=tolerance), (turn, start)
        assert turn.end == pytest.approx(end, abs=tolerance), (turn, end)
        assert voices.setdefault(voice, turn.speaker) == turn.speaker, (voices, turn)
    assert len(set(voices.values())) == len(voices)


def test_is_a_speaker_diarizer(diarizer: Diarizer) -> None:
    assert isinstance(diarizer, SpeakerDiarizer)
    assert diarizer.capabilities.sample_rate == RATE


def test_alternating_voices_give_their_turns(diarizer: Diarizer) -> None:
    parts: Parts = [("low", 3), ("gap", 0.5), ("high", 2.5), ("gap", 0.5), ("low", 2)]
    parts += [("gap", 0.7), ("high", 1.5), ("low", 1.2)]  # the last change without a pause
    audio, truth = _talk(parts)
    turns = diarizer.diarize(audio, DiarizeOptions())
    _check(turns, truth)
    assert [t.speaker for t in turns][:2] == ["spk0", "spk1"]
    assert not any(t.known for t in turns)


def test_overlapping_voices_give_overlapping_turns(diarizer: Diarizer) -> None:
    low, high = tone(LOW_HZ, 4.0), tone(HIGH_HZ, 3.0)
    samples = np.zeros(int(7.0 * RATE), np.float32)
    samples[: len(low)] += low
    samples[int(3.0 * RATE) : int(3.0 * RATE) + len(high)] += high  # 1 s of both
    turns = diarizer.diarize(Audio(samples, RATE), DiarizeOptions())
    assert [(t.speaker, round(t.start, 1), round(t.end, 1)) for t in turns] == [
        ("spk0", 0.0, 4.0),
        ("spk1", 3.0, 6.0),
    ]


def test_one_voice_stretched_over_many_windows_is_one_speaker(diarizer: Diarizer) -> None:
    audio, truth = _talk([("high", 9.0), ("gap", 1.0), ("high", 4.0)])
    turns = diarizer.diarize(audio, DiarizeOptions())
    _check(turns, truth)
    assert {t.speaker for t in turns} == {"spk0"}


def test_a_known_count_merges_voices(diarizer: Diarizer) -> None:
    audio, _truth = _talk([("low", 2), ("gap", 0.5), ("high", 2), ("gap", 0.5), ("low", 2)])
    assert len({t.speaker for t in diarizer.diarize(audio, DiarizeOptions())}) == 2
    merged = diarizer.diarize(audio, DiarizeOptions(num_speakers=1))
    assert len({t.speaker for t in merged}) == 1


def test_a_lower_threshold_splits_more(diarizer: Diarizer) -> None:
    audio, _truth = _talk([("low", 2), ("gap", 0.5), ("high", 2)])
    # cosine distance under 0 is never reached: every unit stays its own speaker
    turns = diarizer.diarize(audio, DiarizeOptions(threshold=1e-9))
    assert len({t.speaker for t in turns}) >= 2


def test_known_speakers_are_named_and_others_stay_anonymous(diarizer: Diarizer) -> None:
    audio, truth = _talk([("low", 3), ("gap", 0.5), ("high", 2.5), ("gap", 0.5), ("low", 2)])
    reference = Audio(tone(HIGH_HZ, 2.5, amplitude=0.2, phase=1.0), RATE)
    unrelated = Audio(tone(3000, 2.5), RATE)  # a voice nobody in the audio has
    options = DiarizeOptions(
        known_speakers=(KnownSpeaker("ann", reference), KnownSpeaker("bob", unrelated))
    )
    turns = diarizer.diarize(audio, options)
    _check(turns, truth)
    assert [(t.speaker, t.known) for t in turns] == [
        ("spk0", False),
        ("ann", True),
        ("spk0", False),
    ]


def test_a_reference_too_short_to_embed_is_a_clear_error(diarizer: Diarizer) -> None:
    audio, _truth = _talk([("low", 2)])
    short = KnownSpeaker("ann", Audio(tone(HIGH_HZ, 0.0005), RATE))  # 8 samples
    with pytest.raises(InvalidRequestError, match="too short") as caught:
        diarizer.diarize(audio, DiarizeOptions(known_speakers=(short,)))
    assert caught.value.param == "known_speaker_references"


def test_silence_and_tiny_audio_have_no_speakers(diarizer: Diarizer) -> None:
    assert diarizer.diarize(Audio(np.zeros(5 * RATE, np.float32), RATE), DiarizeOptions()) == []
    assert diarizer.diarize(Audio(np.zeros(10, np.float32), RATE), DiarizeOptions()) == []
    # shorter than one window (2 s), padded with silence
    turns = diarizer.diarize(Audio(tone(LOW_HZ, 1.2), RATE), DiarizeOptions())
    assert [(round(t.start, 2), round(t.end, 2)) for t in turns] == [(0.0, 1.2)]


def test_wrong_rate_and_closed_engine_are_errors(model_dir: Path) -> None:
    engine = _load(model_dir)
    with pytest.raises(EngineError, match="16000 Hz"):
        engine.diarize(Audio(np.zeros(8000, np.float32), 8000), DiarizeOptions())
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.diarize(Audio(np.zeros(RATE, np.float32), RATE), DiarizeOptions())


def test_long_recordings_are_diarized_in_blocks_with_speakers_linked(model_dir: Path) -> None:
    """One-minute blocks (the least allowed) over 100 s: the voices of the second block
    are the first block's speakers, not new ones."""
    parts: Parts = []
    for _ in range(10):
        parts += [("low", 4.0), ("gap", 1.0), ("high", 4.0), ("gap", 1.0)]
    audio, truth = _talk(parts)
    assert len(_block_bounds(audio.samples, RATE, 60.0)) == 2
    engine = _load(model_dir, block_minutes=1, window_shift=0.5)
    try:
        turns = engine.diarize(audio, DiarizeOptions())
        _check(turns, truth, tolerance=0.1)
        assert {t.speaker for t in turns} == {"spk0", "spk1"}
        # a count across blocks is reached by merging the linked speakers
        assert {t.speaker for t in engine.diarize(audio, DiarizeOptions(num_speakers=1))} == {
            "spk0"
        }
    finally:
        engine.close()


# --- the parts on their own --------------------------------------------------------------


def test_powerset_follows_pyannote_order() -> None:
    mapping = powerset_mapping(3, 2)
    assert mapping.astype(int).tolist() == [
        [0, 0, 0],
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [1, 1, 0],
        [1, 0, 1],
        [0, 1, 1],
    ]


def test_windows_cover_the_recording() -> None:
    assert window_starts(10, 100, 25) == [0]
    assert window_starts(200, 100, 25) == [0, 25, 50, 75, 100]
    assert window_starts(210, 100, 25) == [0, 25, 50, 75, 100, 125]


def _window(rows: list[str], start: int = 0) -> WindowActivity:
    """One window from strings of local speakers per frame, e.g. ["0", "01", "-"]."""
    active = np.zeros((len(rows), 3), bool)
    for frame, row in enumerate(rows):
        for speaker in row.replace("-", ""):
            active[frame, int(speaker)] = True
    return WindowActivity(start, active)


def test_a_local_speaker_is_cut_where_someone_else_talks_between() -> None:
    window = _window(["0", "0", "-", "0", "1", "1", "-", "0", "0", "01", "0"])
    units = speech_units([window])
    tracks = [(u.frames.tolist(), u.clean.tolist()) for u in units]
    # a pause alone does not cut a track; the other speaker talking between does
    assert tracks == [
        ([0, 1, 3], [0, 1, 3]),
        ([7, 8, 9, 10], [7, 8, 10]),
        ([4, 5], [4, 5]),
        ([9], []),
    ]


def test_centroid_linkage_does_not_chain() -> None:
    """A chain of voices, each close to the next, ends far from where it began: single
    linkage would join it all; clusters joined by their mean voice stop."""
    angles = np.radians([0, 30, 60, 90, 120, 150])
    chain = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    weights = np.ones(len(chain))
    labels = cluster_voices(chain, weights, threshold=0.2)  # joins under cos 0.8 (37 deg)
    assert len(set(labels.tolist())) >= 2
    assert labels[0] != labels[-1]
    assert cluster_voices(chain, weights, threshold=0.2, count=1).tolist() == [0] * 6
    assert cluster_voices(chain[:0], weights[:0], threshold=0.2).tolist() == []


def test_clusters_are_numbered_in_order_of_first_unit() -> None:
    a, b = np.array([1, 0], np.float32), np.array([0, 1], np.float32)
    voices = np.stack([b, a, b, a])
    assert cluster_voices(voices, np.ones(4), threshold=0.5).tolist() == [0, 1, 0, 1]


def test_turns_follow_the_windows_majority() -> None:
    """Three windows see frames 2-5; two hear speaker A there, one hears B: A wins."""
    grid = FrameGrid(hop=100, rate=1000, total=1000)
    windows = [
        _window(["-", "-", "0", "0", "0", "0", "-", "-"], start=0),
        _window(["0", "0", "0", "0", "-", "-", "-", "-"], start=200),
        _window(["1", "1", "1", "1", "-", "-", "-", "-"], start=200),
    ]
    units = speech_units(windows)
    turns = speaker_turns(windows, units, [0, 0, 1], grid, min_speech=0.0, min_silence=0.0)
    assert [(t.start, t.end, t.speaker) for t in turns] == [(0.2, 0.6, 0)]


def test_turns_close_short_gaps_and_drop_short_runs() -> None:
    grid = FrameGrid(hop=100, rate=1000, total=2000)
    rows = ["0", "0", "0", "-", "0", "0", "0", "-", "-", "-", "-", "0", "-", "-", "-", "-"]
    windows = [_window(rows)]
    units = speech_units(windows)
    turns = speaker_turns(windows, units, [0] * len(units), grid, 0.15, 0.15)
    # the 0.1 s gap is closed, the lone 0.1 s frame dropped
    assert [(t.start, t.end) for t in turns] == [(0.0, 0.7)]


def test_units_embedded_in_parallel_give_the_same_turns(
    model_dir: Path, diarizer: Diarizer
) -> None:
    parts: Parts = [("low", 3), ("gap", 0.5), ("high", 2.5), ("gap", 0.5), ("low", 2)]
    audio, _truth = _talk(parts * 3)
    engine = _load(model_dir, threads=3)
    try:
        assert engine.diarize(audio, DiarizeOptions()) == diarizer.diarize(audio, DiarizeOptions())
    finally:
        engine.close()
