"""Fish Speech (OpenAudio S1-mini) for real: fish-speech 0.1.0 installed ``--no-deps`` in the
shared ``torch-tts`` environment, a tiny random-weight model and codec written by
fish-speech itself, a worker from that environment, and the official openai client.
S1-mini has no built-in voice: ``fish`` speaks in cloned voices and in its configured
``default_reference`` (a human recording). The seed fixes where the tiny model stops,
so the same request gives the same samples. The audio is noise, at 44.1 kHz.
"""

from __future__ import annotations

import io
import wave

import httpx
import pytest

from bragi.backends.fish import BACKEND
from livesupport import LiveServer
from tinymodels.fish import SAMPLES_PER_FRAME

pytestmark = pytest.mark.slow


def speak(live: LiveServer, **request: object) -> httpx.Response:
    body = {"model": "fish", "voice": "default", "input": "Hello there.", "response_format": "pcm"}
    with live.http() as http:
        return http.post("/v1/audio/speech", json=body | request)


def pcm(live: LiveServer, **request: object) -> bytes:
    response = speak(live, **request)
    assert response.status_code == 200, response.text
    return response.content


def test_the_model_lists_its_default_voice_and_marker_instructions(
    tts_live: LiveServer, fish_dir: object
) -> None:
    with tts_live.http() as http:
        model = http.get("/v1/models/fish").json()
    assert model["backend"] == "fish" and [v["id"] for v in model["voices"]] == ["default"]
    assert model["instructions"] == "style"
    assert BACKEND.detect(fish_dir)  # type: ignore[arg-type]
    BACKEND.check(fish_dir)  # type: ignore[arg-type]


@pytest.mark.parametrize("response_format", ["wav", "mp3", "flac", "opus", "aac", "pcm"])
def test_speech_in_every_format_at_44_1_khz_out_as_24(
    tts_live: LiveServer, response_format: str
) -> None:
    """The engine speaks at 44.1 kHz; every format goes out at 24 kHz, as OpenAI's."""
    response = speak(tts_live, response_format=response_format, input="One. Two.")
    assert response.status_code == 200, response.text
    if response_format == "wav":
        with wave.open(io.BytesIO(response.content)) as audio:
            assert audio.getframerate() == 24_000 and audio.getnchannels() == 1
    if response_format == "pcm":
        # Whole codec frames (2048 samples at 44.1 kHz) in each sentence, resampled.
        frames = len(response.content) / 2 / (SAMPLES_PER_FRAME * 24_000 / 44_100)
        assert frames >= 2 and abs(frames - round(frames)) < 0.01


def test_a_cloned_voice_by_name_and_by_id_and_the_default_voice_differ(
    tts_live: LiveServer, cloned: dict[str, str]
) -> None:
    """``heard`` (10 s) is cut to the 6 s this model is configured to use, after the last
    word Whisper timed before 6 s, with exactly those words as the prompt's text."""
    by_name = pcm(tts_live, voice="heard", input="It was the best of times.")
    by_id = pcm(tts_live, voice={"id": cloned["heard"]}, input="It was the best of times.")
    assert by_name == by_id
    default = pcm(tts_live, input="It was the best of times.")
    assert default != by_name  # another reference, other codes in the prompt
    assert pcm(tts_live, voice="alloy", input="It was the best of times.") == default


def test_a_long_reference_whose_transcript_has_no_times_is_refused(
    tts_live: LiveServer, cloned: dict[str, str]
) -> None:
    """``told``'s transcript was typed in: it cannot follow a cut to 6 s."""
    response = speak(tts_live, voice="told")
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "longer than the 6 s Fish Speech uses" in message and "no timing" in message


def test_sentences_stream_one_by_one(tts_live: LiveServer) -> None:
    request = {"model": "fish", "voice": "default", "input": "One. Two. Three."}
    with (
        tts_live.http() as http,
        http.stream("POST", "/v1/audio/speech", json=request | {"stream_format": "sse"}) as r,
    ):
        assert r.status_code == 200
        deltas = [line for line in r.iter_lines() if '"speech.audio.delta"' in line]
    assert len(deltas) >= 3


def test_emotion_markers_are_its_instructions(tts_live: LiveServer) -> None:
    plain = pcm(tts_live)
    assert pcm(tts_live) == plain
    assert pcm(tts_live, instructions="(sad) (whispering)") != plain  # in the prompt
    free = speak(tts_live, instructions="Sound a little sad.")
    assert free.status_code == 400 and free.json()["error"]["param"] == "instructions"
    assert "(sad)" in free.json()["error"]["message"]


def test_a_sentence_over_its_frame_cap_is_an_error(tts_live: LiveServer) -> None:
    response = speak(tts_live, model="fish-capped")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "runaway_generation" and "within 8 frames" in error["message"]
    tts_live.assert_healthy()


def test_voices_and_languages_it_cannot_speak_are_refused(tts_live: LiveServer) -> None:
    unknown = speak(tts_live, voice="nobody")
    assert unknown.status_code == 400 and "default" in unknown.json()["error"]["message"]
    hindi = speak(tts_live, language="hi")
    assert hindi.status_code == 400 and hindi.json()["error"]["param"] == "language"
