"""Transcribing stretches of a recording one by one (server_vad on engines without a VAD,
speaker runs on engines without word times): which stretches, and segment and word times
back on the recording's clock. Bragi's real Silero VAD on real speech; the named fake
speech-to-text engine where only the orchestration is under test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bragi.audio import Audio, decode_audio
from bragi.backends.protocol import SpeakerTurn, SttCapabilities, TranscribeOptions, VadRequest
from bragi.backends.stretches import (
    _intersect,
    speaker_runs,
    speech_stretches,
    transcribe_planned,
    transcribe_stretches,
    vad_options,
)
from bragi.backends.vad import VadOptions
from fakes import FakeSttBackend, FakeSttEngine
from speech import SpeechSample

RATE = 16_000


def _engine(*, vad: bool = False, words: bool = True) -> tuple[FakeSttBackend, FakeSttEngine]:
    capabilities = SttCapabilities(RATE, frozenset({"en"}), word_timestamps=words, vad=vad)
    backend = FakeSttBackend(segments=2, capabilities=capabilities, words=True)
    engine = backend.load(Path("unused"), "cpu", backend.options_model())
    assert isinstance(engine, FakeSttEngine)
    return backend, engine


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


@pytest.fixture(scope="module")
def padded_speech(speech: dict[str, SpeechSample]) -> Audio:
    """beckett.wav (10 s) between 3 s of silence before and 2 s after."""
    beckett = decode_audio(speech["beckett"].path.read_bytes(), RATE).samples
    return Audio(np.concatenate([_silence(3.0), beckett, _silence(2.0)]), RATE)


def test_request_settings_map_onto_silero() -> None:
    base = VadOptions()
    mapped = vad_options(VadRequest(threshold=0.7, silence_ms=900, padding_ms=50), base)
    assert (mapped.threshold, mapped.min_silence_ms, mapped.speech_pad_ms) == (0.7, 900, 50)
    assert vad_options(VadRequest(), base) == base.model_copy(update={"join": False})
    # OpenAI's ends of the range (0 and 1) are Silero's nearest usable values (documented)
    assert vad_options(VadRequest(threshold=0.0), base).threshold == 0.01
    assert vad_options(VadRequest(threshold=1.0), base).threshold == 0.99


def test_speech_is_found_where_it_is(padded_speech: Audio) -> None:
    stretches = speech_stretches(padded_speech, VadRequest(padding_ms=100))
    assert stretches, "beckett.wav has speech"
    assert 2.7 < stretches[0][0] < 3.6 and 11.5 < stretches[-1][1] < 12.5, stretches
    # a long silence to end speech keeps the sentences together; a short one cuts them
    long = speech_stretches(padded_speech, VadRequest(silence_ms=2000))
    short = speech_stretches(padded_speech, VadRequest(silence_ms=100))
    assert len(long) == 1 and len(short) > 2


def test_stretches_are_transcribed_on_the_recording_clock() -> None:
    backend, engine = _engine()
    audio = Audio(np.ones(10 * RATE, np.float32) * 0.1, RATE)
    options = TranscribeOptions(word_timestamps=True)
    segments, info = transcribe_stretches(engine, audio, options, [(1.0, 3.0), (6.0, 9.5)])
    assert len(backend.calls) == 1  # the first stretch at once: its errors come first
    got = [(s.id, s.start, s.end, s.words[0].start if s.words else None) for s in segments]
    assert got == [(0, 1.0, 1.5, 1.0), (1, 1.5, 2.0, 1.5), (2, 6.0, 6.5, 6.0), (3, 6.5, 7.0, 6.5)]
    assert [round(c.duration, 3) for c in backend.calls] == [2.0, 3.5]
    assert info.duration == 10.0


def test_no_stretch_still_checks_the_request() -> None:
    backend, engine = _engine()
    audio = Audio(_silence(4.0), RATE)
    segments, info = transcribe_stretches(engine, audio, TranscribeOptions(), [(1.0, 1.05)])
    assert list(segments) == [] and info.duration == 4.0
    assert len(backend.calls) == 1 and backend.calls[0].duration == 0


def test_a_client_that_leaves_stops_the_stretch_being_decoded() -> None:
    backend, engine = _engine()
    audio = Audio(np.ones(6 * RATE, np.float32), RATE)
    segments, _info = transcribe_stretches(engine, audio, TranscribeOptions(), [(0, 2), (3, 5)])
    next(segments)
    segments.close()  # the generator's own close, as the route calls it
    assert backend.calls[0].closed.is_set() and len(backend.calls) == 1


def test_plan_uses_the_engines_own_vad_when_it_has_one(padded_speech: Audio) -> None:
    backend, engine = _engine(vad=True)
    request = TranscribeOptions(vad=VadRequest(threshold=0.5))
    list(transcribe_planned(engine, padded_speech, request)[0])
    assert len(backend.calls) == 1 and backend.calls[0].options.vad == VadRequest(threshold=0.5)


def test_plan_cuts_at_speech_for_an_engine_without_vad(padded_speech: Audio) -> None:
    backend, engine = _engine(vad=False)
    request = TranscribeOptions(vad=VadRequest(silence_ms=2000))
    segments = list(transcribe_planned(engine, padded_speech, request)[0])
    assert len(backend.calls) == 1 and backend.calls[0].options.vad is None
    assert segments[0].start > 2.7  # on the recording's clock, after the leading silence
    assert 8 < backend.calls[0].duration < 9.5  # the speech alone was decoded
    untouched, _info = transcribe_planned(engine, padded_speech, TranscribeOptions())
    list(untouched)
    assert backend.calls[-1].duration == padded_speech.duration


def test_plan_by_speaker_runs_for_an_engine_without_word_times() -> None:
    backend, engine = _engine(words=False)
    audio = Audio(np.ones(10 * RATE, np.float32), RATE)
    turns = [SpeakerTurn(0.5, 3.0, "a"), SpeakerTurn(3.5, 6.0, "b"), SpeakerTurn(7.0, 9.0, "a")]
    segments = list(transcribe_planned(engine, audio, TranscribeOptions(), turns)[0])
    assert [round(c.duration, 2) for c in backend.calls] == [3.2, 2.9, 3.2]
    assert [s.start for s in segments][::2] == pytest.approx([0.0, 3.3, 6.8])


def test_speaker_runs_join_one_speakers_turns_and_pad_them() -> None:
    turns = [
        SpeakerTurn(0.5, 2.0, "a"),
        SpeakerTurn(2.2, 3.0, "a"),
        SpeakerTurn(3.1, 5.0, "b"),
        SpeakerTurn(6.0, 7.0, "a"),
    ]
    found = speaker_runs(turns, 9.0)
    assert [pytest.approx(run) for run in [(0.0, 3.1), (3.1, 5.2), (5.8, 9.0)]] == found
    assert speaker_runs([], 4.0) == []


def test_intersection_of_stretches() -> None:
    runs = [(0.0, 3.0), (3.0, 6.0)]
    speech = [(1.0, 2.0), (2.5, 4.0), (5.5, 8.0)]
    assert _intersect(runs, speech) == [(1.0, 2.0), (2.5, 3.0), (3.0, 4.0), (5.5, 6.0)]


def test_plan_with_both_cuts_speaker_runs_at_the_speech(padded_speech: Audio) -> None:
    """A speaker change in the middle of beckett.wav and server_vad: the runs, trimmed to
    the speech (the leading and trailing silence are not decoded)."""
    backend, engine = _engine(words=False, vad=False)
    turns = [SpeakerTurn(3.0, 7.0, "a"), SpeakerTurn(7.5, 12.0, "b")]
    request = TranscribeOptions(vad=VadRequest(silence_ms=2000))
    segments = list(transcribe_planned(engine, padded_speech, request, turns)[0])
    assert len(backend.calls) == 2 and all(c.options.vad is None for c in backend.calls)
    assert 2.7 < segments[0].start < 3.6 and 7.2 < segments[2].start < 7.6
    assert sum(c.duration for c in backend.calls) < 9.5  # not the 15 s recording
