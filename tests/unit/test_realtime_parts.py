"""The realtime package's pure parts: G.711 tables, the Silero stream, partial-text
agreement, session updates."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import av
import numpy as np
import pytest

from bragi.audio import decode_audio
from bragi.backends.vad import load_silero_vad
from bragi.config import load_settings
from bragi.errors import ConfigError, InvalidRequestError
from bragi.realtime.deltas import DeltaText
from bragi.realtime.formats import AudioDecoder, InputFormat, alaw_table, ulaw_table
from bragi.realtime.session_config import SessionConfig, parse_session, render_ga
from speech import SpeechSample


@pytest.mark.parametrize(("muxer", "table"), [("mulaw", ulaw_table()), ("alaw", alaw_table())])
def test_g711_tables_match_ffmpegs_decoders(muxer: str, table: np.ndarray) -> None:
    every_byte = bytes(range(256))
    options = {"sample_rate": "8000", "channels": "1"}
    with av.open(io.BytesIO(every_byte), format=muxer, options=options) as container:
        decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert np.array_equal(decoded.astype(np.float32) / 32768, table)


def test_pcm_split_at_an_odd_byte_decodes_as_one_piece() -> None:
    samples = (np.sin(np.arange(1600) / 7) * 20000).astype("<i2").tobytes()
    whole = AudioDecoder(InputFormat("audio/pcm", 16_000)).decode(samples)
    split = AudioDecoder(InputFormat("audio/pcm", 16_000))
    parts = [split.decode(samples[:1001]), split.decode(samples[1001:])]
    assert np.array_equal(np.concatenate(parts), whole)


def test_the_silero_stream_gives_the_same_frames_whatever_the_pieces(
    speech: dict[str, SpeechSample],
) -> None:
    vad = load_silero_vad()
    samples = decode_audio(speech["beckett"].path.read_bytes(), 16_000).samples[:48_000]
    whole = vad.probabilities(samples)
    stream = vad.stream()
    cuts = [0, 100, 613, 5000, 5001, 20_000, len(samples)]
    pieces = [stream.feed(samples[a:b]) for a, b in itertools.pairwise(cuts)]
    assert np.allclose(np.concatenate(pieces), whole, atol=1e-6)
    assert whole.max() > 0.9 and whole.min() < 0.1  # speech and pauses both there


def test_only_words_two_hypotheses_agree_on_are_sent() -> None:
    text = DeltaText()
    assert text.hypothesis("It was the bes") is None  # nothing to agree with yet
    assert text.hypothesis("It was the best of") == "It was the"
    assert text.hypothesis("It was the best of times,") == " best of"
    assert text.hypothesis("It was a best") is None  # disagrees with what was sent
    assert text.final("It was the best of times, it was the worst of times.") == (
        " times, it was the worst of times."
    )
    assert text.text == "It was the best of times, it was the worst of times."


def test_a_final_that_contradicts_the_sent_words_adds_nothing() -> None:
    text = DeltaText()
    text.hypothesis("Ever tried ever")
    assert text.hypothesis("Ever tried, ever failed") == "Ever tried, ever"
    assert text.final("Never tried. Ever failed.") is None


def test_session_updates_change_only_what_they_name() -> None:
    config = SessionConfig(model="whisper-1")
    vad = {"type": "server_vad", "silence_duration_ms": 800}
    config = parse_session(config, {"audio": {"input": {"turn_detection": vad}}}, beta=False)
    assert config.turn_detection is not None
    assert (config.turn_detection.silence_duration_ms, config.turn_detection.threshold) == (
        800,
        0.5,
    )
    semantic = {"type": "semantic_vad", "eagerness": "low"}
    config = parse_session(config, {"audio": {"input": {"turn_detection": semantic}}}, beta=False)
    assert config.turn_detection is not None and config.turn_detection.vad.silence_duration_ms == (
        2000
    )
    config = parse_session(config, {"turn_detection": None}, beta=True)
    assert config.turn_detection is None and config.model == "whisper-1"
    keywords = {"keywords": ["Bragi", "Whisper"], "languages": ["de"]}
    config = parse_session(config, {"audio": {"input": {"transcription": keywords}}}, beta=False)
    assert (config.transcribe_prompt, config.transcribe_language) == ("Bragi, Whisper", "de")
    rendered = render_ga(config, "sess_1", 0)["audio"]["input"]["transcription"]
    assert rendered["keywords"] == ["Bragi", "Whisper"] and rendered["languages"] == ["de"]
    with pytest.raises(InvalidRequestError) as refused:
        parse_session(
            config, {"audio": {"input": {"transcription": {"languages": ["xx"]}}}}, beta=False
        )
    assert refused.value.param == "session.audio.input.transcription.languages"


def test_realtime_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAGI_REALTIME__MAX_SESSIONS", "3")
    monkeypatch.setenv("BRAGI_REALTIME__PARTIALS", "false")
    settings = load_settings(Path("/dev/null"))
    assert settings.realtime.max_sessions == 3 and settings.realtime.partials is False
    assert settings.realtime.max_session_minutes == 30  # the rest keep their defaults
    monkeypatch.setenv("BRAGI_REALTIME__MAX_SESSIONS", "0")
    with pytest.raises(ConfigError, match=r"realtime\.max_sessions"):
        load_settings(Path("/dev/null"))
