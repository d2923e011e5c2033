"""Cutting a cloned voice's reference to what an engine uses, with the words that go with it."""

from __future__ import annotations

import numpy as np
import pytest

from bragi.audio.types import Audio
from bragi.backends.protocol import TimedText, VoiceReference
from bragi.backends.references import fit_reference, needs_transcript
from bragi.errors import InvalidRequestError

RATE = 24_000


def speech_with_pauses(words: int, seconds: float = 2.0, pause: float = 0.8) -> Audio:
    """``words`` bursts of noise ``seconds`` long, each followed by ``pause`` of silence."""
    rng = np.random.default_rng(0)
    pieces = []
    for _ in range(words):
        pieces.append(rng.uniform(-0.3, 0.3, round(seconds * RATE)).astype(np.float32))
        pieces.append(np.zeros(round(pause * RATE), np.float32))
    return Audio(np.concatenate(pieces), RATE)


def test_a_short_reference_is_used_whole_with_its_transcript() -> None:
    audio = speech_with_pauses(2)
    fitted = fit_reference(VoiceReference("v", audio, "one two"), 12.0)
    assert fitted.audio is audio and fitted.transcript == "one two"
    assert not fitted.transcript_dropped


def test_a_timed_transcript_cuts_after_the_last_stretch_that_fits() -> None:
    audio = speech_with_pauses(6)  # 16.8 s: stretches of 2.8 s
    timed = tuple(TimedText(2.8 * i, 2.8 * i + 2.0, f"w{i}") for i in range(6))
    reference = VoiceReference("v", audio, " ".join(p.text for p in timed), timed)
    fitted = fit_reference(reference, 10.0)
    assert fitted.transcript == "w0 w1 w2"  # w3 ends at 10.4 s
    assert fitted.audio.duration == pytest.approx(5.6 + 2.0 + 0.15, abs=0.01)
    assert not fitted.transcript_dropped


def test_an_untimed_transcript_cannot_follow_a_cut_at_a_pause() -> None:
    audio = speech_with_pauses(6)
    fitted = fit_reference(VoiceReference("v", audio, "w0 w1 w2 w3 w4 w5"), 10.0)
    assert fitted.transcript is None and fitted.transcript_dropped
    assert fitted.audio.duration <= 10.0
    tail = fitted.audio.samples[-round(0.1 * RATE) :]
    assert float(np.abs(tail).max()) < 0.01, "the cut falls in a pause, not mid-word"
    with pytest.raises(InvalidRequestError, match="no timing to cut it with") as refused:
        needs_transcript("F5-TTS", "ada", fitted, 10.0)
    assert refused.value.param == "voice" and "at most 10 s" in refused.value.message


def test_an_engine_that_needs_a_transcript_says_how_to_get_one() -> None:
    fitted = fit_reference(VoiceReference("v", speech_with_pauses(1), None), 12.0)
    with pytest.raises(InvalidRequestError, match="voice_transcription_model"):
        needs_transcript("Fish Speech", "ada", fitted, 12.0)
