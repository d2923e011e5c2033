"""F5-TTS for real: the catalog's ``f5-tts`` pulled with its Vocos companion repo from the
stand-in hub at start-up, a tiny random-weight DiT and Vocos written by f5-tts and vocos
themselves, a worker from the shared ``torch-tts`` environment, and the official openai
client. F5 clones every voice; its length comes from its duration estimate, so lengths
are exact, and a fixed seed makes the samples repeatable. The audio is noise.
"""

from __future__ import annotations

import io
import json
import wave

import httpx
import pytest

from hubstub import HubStub
from livesupport import LiveServer

pytestmark = pytest.mark.slow


def speak(live: LiveServer, **request: object) -> httpx.Response:
    body = {"model": "f5", "voice": "told", "input": "Hello there.", "response_format": "pcm"}
    with live.http() as http:
        return http.post("/v1/audio/speech", json=body | request)


def pcm(live: LiveServer, **request: object) -> bytes:
    response = speak(live, **request)
    assert response.status_code == 200, response.text
    return response.content


@pytest.fixture(scope="module")
def reader(cloned: dict[str, str]) -> str:
    """A cloned voice from a human recording, with its exact transcript (``told``)."""
    return cloned["told"]


def test_the_catalog_model_came_with_its_vocoder_and_says_its_licence(
    tts_live: LiveServer, f5_hub: HubStub
) -> None:
    with tts_live.http() as http:
        model = http.get("/v1/models/f5").json()
    assert model["backend"] == "f5" and model["state"] in ("available", "loaded")
    assert model["non_commercial"] is True and "CC-BY-NC-4.0" in model["license"]
    assert model["instructions"] == "none" and model["voices"] == []
    for repo, path in (
        ("SWivid/F5-TTS", "F5TTS_v1_Base/model_1250000.safetensors"),
        ("charactr/vocos-mel-24khz", "pytorch_model.bin"),
    ):
        assert f5_hub.content_gets(path), f"{repo} was not pulled"
    assert not f5_hub.content_gets("README.md")  # only the files the model needs


@pytest.mark.parametrize("response_format", ["wav", "mp3", "flac", "opus", "aac", "pcm"])
def test_speech_in_every_format(tts_live: LiveServer, reader: str, response_format: str) -> None:
    response = speak(tts_live, response_format=response_format)
    assert response.status_code == 200, response.text
    assert len(response.content) > 200
    if response_format == "wav":
        with wave.open(io.BytesIO(response.content)) as audio:
            assert audio.getframerate() == 24_000 and audio.getnframes() > 2_400


def test_a_cloned_voice_by_name_and_by_id_sentence_by_sentence(
    tts_live: LiveServer, reader: str
) -> None:
    text = "Ever tried. Ever failed."
    by_name = pcm(tts_live, input=text)
    assert pcm(tts_live, input=text, voice={"id": reader}) == by_name  # and the seed holds
    request = {"model": "f5", "voice": reader, "input": text, "stream_format": "sse"}
    with (
        tts_live.http() as http,
        http.stream("POST", "/v1/audio/speech", json=request | {"response_format": "pcm"}) as r,
    ):
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert len([e for e in events if e["type"] == "speech.audio.delta"]) >= 2


def test_a_transcript_from_whisper_serves_and_none_is_a_clear_400(
    tts_live: LiveServer, cloned: dict[str, str]
) -> None:
    assert pcm(tts_live, voice="heard")  # transcribed by the starter Whisper at creation
    bare = speak(tts_live, voice="bare")
    assert bare.status_code == 400
    message = bare.json()["error"]["message"]
    assert "F5-TTS clones from a recording and its transcript" in message
    assert "voice_transcription_model" in message


def test_speed_is_native(tts_live: LiveServer, reader: str) -> None:
    """F5 shortens its duration estimate: half the frames of speech at twice the speed."""
    text = "This sentence is long enough to be timed."
    normal = len(pcm(tts_live, input=text))
    fast = len(pcm(tts_live, input=text, speed=2.0))
    assert fast == pytest.approx(normal / 2, rel=0.05)


def test_languages_and_voices_it_cannot_speak_are_refused(tts_live: LiveServer) -> None:
    japanese = speak(tts_live, language="ja", voice="alloy")
    assert japanese.status_code == 400
    no_voice = speak(tts_live, voice="alloy")
    assert no_voice.status_code == 400
    assert "clone one with POST /v1/audio/voices" in no_voice.json()["error"]["message"]
    tts_live.assert_healthy()
