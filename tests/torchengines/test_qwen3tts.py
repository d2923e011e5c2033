"""Qwen3-TTS for real: ``bragi backend install qwen3tts`` (the shared ``torch-tts``
environment), tiny random-weight models of each variant written by qwen-tts itself, workers
started from that environment, and ``bragi serve`` answering the official openai client.
The weights are random, so the audio is noise: these tests check formats, streaming,
voices, instructions, the frame cap, errors and where torch lives, never the sound.

The tiny talker stops once it has spoken about as many frames as the prompt has text
(``tests/tinymodels/qwen3tts.py``), and every model samples with a fixed seed, so the
same request always gives the same samples: a difference is the request's doing.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import wave
from pathlib import Path

import httpx
import openai
import pytest

from bragi.backends.qwen3tts import BACKEND, DESIGNED_VOICE
from livesupport import LiveServer
from speech import SpeechSample, word_error_rate
from tinymodels.qwen3tts import LANGUAGES, SAMPLES_PER_FRAME, SPEAKERS
from torchenvs import child_pids, mapped_files

pytestmark = pytest.mark.slow


def speak(live: LiveServer, **request: object) -> httpx.Response:
    body = {"input": "Hello there.", "response_format": "pcm"} | request
    with live.http() as http:
        return http.post("/v1/audio/speech", json=body)


def pcm(live: LiveServer, **request: object) -> bytes:
    response = speak(live, **request)
    assert response.status_code == 200, response.text
    return response.content


def test_each_variant_is_recognised_and_described_from_its_files(
    qwen_dirs: dict[str, Path],
) -> None:
    """Voices and what instructions do, from config.json: no torch, no loading."""
    expected = {
        "qwen-custom": (list(SPEAKERS), "style"),
        "qwen-small": (list(SPEAKERS), "none"),  # qwen-tts drops a 0.6B model's instruction
        "qwen-design": ([DESIGNED_VOICE], "voice"),
        "qwen-clone": ([], "none"),
    }
    for alias, (voices, instructions) in expected.items():
        path = qwen_dirs[alias]
        assert BACKEND.detect(path)
        BACKEND.check(path)  # nothing to refuse
        assert [v.id for v in BACKEND.voices_in(path, None)] == voices
        assert BACKEND.instructions_in(path, None) == instructions
    assert (qwen_dirs["qwen-clone"] / "speech_tokenizer" / "model.safetensors").is_file()


def test_models_say_what_they_do_with_instructions(tts_live: LiveServer) -> None:
    with tts_live.http() as http:
        listed = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert listed["qwen-custom"]["instructions"] == "style"
    assert listed["qwen-small"]["instructions"] == "none"
    assert listed["qwen-design"]["instructions"] == "voice"
    assert listed["qwen-clone"]["instructions"] == "none"
    assert {v["id"] for v in listed["qwen-custom"]["voices"]} == set(SPEAKERS)
    assert listed["qwen-clone"]["voices"] == []


@pytest.mark.parametrize("response_format", ["wav", "mp3", "flac", "opus", "aac", "pcm"])
def test_speech_in_every_format(tts_live: LiveServer, response_format: str) -> None:
    client = tts_live.client()
    with client.audio.speech.with_streaming_response.create(
        model="qwen-custom",
        voice=SPEAKERS[0],  # type: ignore[arg-type]
        input="Hello there. This is a test.",
        response_format=response_format,  # type: ignore[arg-type]
    ) as response:
        body = response.read()
    assert len(body) > 200
    if response_format == "wav":
        with wave.open(io.BytesIO(body)) as audio:
            assert audio.getframerate() == 24_000 and audio.getnchannels() == 1
            assert audio.getnframes() > 10 * SAMPLES_PER_FRAME


def test_speech_streams_sentence_by_sentence(tts_live: LiveServer) -> None:
    request = {
        "model": "qwen-custom",
        "voice": SPEAKERS[0],
        "input": "One sentence here. And another one there. And a third.",
        "response_format": "pcm",
        "stream_format": "sse",
    }
    with (
        tts_live.http() as http,
        http.stream("POST", "/v1/audio/speech", json=request) as response,
    ):
        assert response.status_code == 200
        events = [
            json.loads(line[len("data: ") :])
            for line in response.iter_lines()
            if line.startswith("data: ")
        ]
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) >= 3 and events[-1]["type"] == "speech.audio.done"


def test_instructions_reach_the_1_7b_model_and_not_the_0_6b_one(tts_live: LiveServer) -> None:
    plain = pcm(tts_live, model="qwen-custom", voice="ryan")
    assert pcm(tts_live, model="qwen-custom", voice="ryan") == plain  # the seed holds
    styled = pcm(tts_live, model="qwen-custom", voice="ryan", instructions="Very sad.")
    assert styled != plain
    # The instruction is part of the talker's prompt: the tiny model speaks longer.
    assert len(styled) > len(plain)

    small = pcm(tts_live, model="qwen-small", voice="ryan")
    assert pcm(tts_live, model="qwen-small", voice="ryan", instructions="Very sad.") == small


def test_the_built_in_speakers_differ_and_openai_names_map_to_them(tts_live: LiveServer) -> None:
    ryan = pcm(tts_live, model="qwen-custom", voice="ryan")
    assert pcm(tts_live, model="qwen-custom", voice="vivian") != ryan
    assert pcm(tts_live, model="qwen-custom", voice="onyx") == ryan  # male: Ryan
    assert pcm(tts_live, model="qwen-custom", voice="nova") == pcm(
        tts_live, model="qwen-custom", voice="vivian"
    )


def test_voice_design_makes_the_voice_from_instructions(tts_live: LiveServer) -> None:
    missing = speak(tts_live, model="qwen-design", voice=DESIGNED_VOICE)
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "instructions"
    calm = pcm(tts_live, model="qwen-design", voice="alloy", instructions="A calm old man.")
    young = pcm(tts_live, model="qwen-design", voice="alloy", instructions="An excited child.")
    assert calm != young
    named = pcm(tts_live, model="qwen-design", voice=DESIGNED_VOICE, instructions="A calm old man.")
    assert named == calm


def test_a_sentence_that_does_not_stop_within_its_cap_is_an_error(tts_live: LiveServer) -> None:
    response = speak(tts_live, model="qwen-capped", voice="ryan")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "runaway_generation" and "within 4 frames" in error["message"]
    assert pcm(tts_live, model="qwen-small", voice="ryan")  # the same model, a sane cap
    tts_live.assert_healthy()


def test_languages_from_the_config_and_a_clear_refusal(tts_live: LiveServer) -> None:
    english = pcm(tts_live, model="qwen-custom", voice="ryan")
    german = pcm(tts_live, model="qwen-custom", voice="ryan", language="de")
    assert german and german != english  # the language token is part of the prompt
    japanese = speak(tts_live, model="qwen-custom", voice="ryan", language="ja")
    assert japanese.status_code == 400
    error = japanese.json()["error"]
    assert error["param"] == "language" and all(code in error["message"] for code in LANGUAGES)


def test_a_base_model_clones_by_name_and_by_id(
    tts_live: LiveServer, cloned: dict[str, str]
) -> None:
    by_name = pcm(tts_live, model="qwen-clone", voice="told", input="Ever tried.")
    by_id = pcm(tts_live, model="qwen-clone", voice={"id": cloned["told"]}, input="Ever tried.")
    assert by_name == by_id and len(by_name) > 2 * SAMPLES_PER_FRAME
    refused = speak(tts_live, model="qwen-custom", voice="told")
    assert refused.status_code == 400 and "qwen-clone" in refused.json()["error"]["message"]
    no_voice = speak(tts_live, model="qwen-clone", voice="alloy")
    assert no_voice.status_code == 400
    assert "clone one with POST /v1/audio/voices" in no_voice.json()["error"]["message"]


def test_a_voice_without_a_transcript_gets_one_from_the_starter_whisper(
    tts_live: LiveServer, cloned: dict[str, str], speech: dict[str, SpeechSample]
) -> None:
    """``heard`` was uploaded without a transcript: Whisper base wrote it, once; with it
    the model continues the reference (in-context). ``bare`` has none: the model clones
    from the speaker embedding alone, another prompt."""
    with tts_live.http() as http:
        heard = http.get("/v1/audio/voices/heard").json()
    assert heard["transcribed_by"] == "whisper-1"
    assert word_error_rate(speech["beckett"].text, heard["transcript"]) < 0.25
    in_context = pcm(tts_live, model="qwen-clone", voice="heard", input="Ever tried.")
    embedding_only = pcm(tts_live, model="qwen-clone", voice="bare", input="Ever tried.")
    assert in_context and embedding_only and in_context != embedding_only


def test_the_command_line_transcribes_a_new_voice(
    tts_live: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    """``bragi voices add`` without --transcript runs the configured Whisper itself."""
    common = ["--config", str(tts_live.data_dir.parent / "config.yaml")]
    common += ["--data-dir", str(tts_live.data_dir)]
    bragi = [sys.executable, "-m", "bragi", "voices"]
    added = subprocess.run(
        [*bragi, "add", "cli-heard", str(speech["beckett"].path), *common],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert added.returncode == 0, added.stderr
    said = added.stdout.split("transcript (whisper-1): ", 1)[1]
    assert word_error_rate(speech["beckett"].text, said) < 0.25
    removed = subprocess.run(
        [*bragi, "rm", "cli-heard", *common], capture_output=True, text=True, timeout=60
    )
    assert removed.returncode == 0, removed.stderr


def test_torch_is_in_the_workers_never_in_the_server(tts_live: LiveServer) -> None:
    assert pcm(tts_live, model="qwen-small", voice="ryan")
    server = tts_live.process.pid
    workers = [pid for pid in child_pids(server) if "libtorch" in mapped_files(pid)]
    assert workers, "no worker process has torch loaded"
    assert "libtorch" not in mapped_files(server) and "torch" not in mapped_files(server)
    interpreters = {
        Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode() for pid in workers
    }
    assert interpreters == {str(tts_live.data_dir / "envs" / "torch-tts" / "bin" / "python")}


def test_unknown_speakers_are_refused_naming_the_real_ones(tts_live: LiveServer) -> None:
    client = tts_live.client()
    with pytest.raises(openai.BadRequestError) as unknown:
        client.audio.speech.create(model="qwen-custom", voice="nobody", input="Hi.")  # type: ignore[arg-type]
    assert "nobody" in unknown.value.message and "ryan" in unknown.value.message
