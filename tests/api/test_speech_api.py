"""``POST /v1/audio/speech`` and ``GET /v1/audio/voices`` against fake engines.

Streaming is shown by the order of events, not by timing: the fake engine waits at a
gate before the last sentence, and the client reads audio while it waits.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import openai
import pytest

from appserver import AppServer, fake_settings, serve_app
from bragi.backends.protocol import TextToSpeech
from bragi.config import ModelConfig, VoiceMapping
from fakes import (
    FAKE_VOICES,
    SECONDS_PER_SENTENCE,
    FakeSttBackend,
    FakeStyledTtsBackend,
    FakeTtsBackend,
    make_model_dir,
    wait_until,
)

FOUR_SENTENCES = "One little sentence. Then a second one! Is this the third? And the last."
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
VOICE_GENDER = {voice.id: voice.gender for voice in FAKE_VOICES}


@pytest.fixture(scope="module")
def tts() -> FakeTtsBackend:
    return FakeTtsBackend()


@pytest.fixture(scope="module")
def styled() -> FakeStyledTtsBackend:
    return FakeStyledTtsBackend()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tts: FakeTtsBackend, styled: FakeStyledTtsBackend
) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("speech")
    models = {
        "tts": ModelConfig(model=str(make_model_dir(root, "fake-tts"))),
        "styled": ModelConfig(model=str(make_model_dir(root, "fake-styled"))),
        "stt": ModelConfig(model=str(make_model_dir(root, "fake-stt"))),
    }
    voices = {"shimmer": VoiceMapping(model="tts", voice="bf_emma")}
    settings = fake_settings(root / "data", models, voices=voices)
    with serve_app(settings, [tts, styled, FakeSttBackend()]) as live:
        yield live


@pytest.fixture
def client(server: AppServer) -> openai.OpenAI:
    return server.client()


def decode(data: bytes, fmt: str) -> tuple[np.ndarray[Any, np.dtype[np.float32]], int]:
    """Samples and rate of an encoded reply, decoded with PyAV (pcm: raw s16le at 24 kHz)."""
    if fmt == "pcm":
        assert len(data) % 2 == 0
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768, 24_000
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        rate = stream.rate
    assert frames, f"no audio frames in the {fmt} reply"
    return np.concatenate(frames).astype(np.float32), rate


def duration(data: bytes, fmt: str) -> float:
    samples, rate = decode(data, fmt)
    assert np.abs(samples).max() > 0.05, "the reply is silent"
    return len(samples) / rate


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None) -> dict:
    """The reply is ``status`` with the OpenAI error body and no audio at all."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error


# --- streaming ----------------------------------------------------------------


def test_first_audio_reaches_the_client_before_the_last_sentence_is_synthesized(
    client: openai.OpenAI, tts: FakeTtsBackend
) -> None:
    gate = threading.Event()
    tts.events.clear()
    tts.gate = gate
    try:
        with client.audio.speech.with_streaming_response.create(
            model="tts", voice="am_echo", input=FOUR_SENTENCES, response_format="mp3"
        ) as response:
            assert response.headers["content-type"] == "audio/mpeg"
            chunks = response.iter_bytes()
            first = next(chunks)
            assert first
            tts.events.append(("client received audio", len(first)))
            # The engine is parked before the last sentence, and the client has audio.
            wait_until(lambda: ("waiting", 3) in tts.events, what="the engine to reach the gate")
            assert ("synthesized", 3) not in tts.events
            gate.set()
            rest = b"".join(chunks)
    finally:
        tts.gate = None
        gate.set()

    events = [name for name, _ in tts.events]
    received = events.index("client received audio")
    last_synthesized = tts.events.index(("synthesized", 3))
    assert received < last_synthesized
    assert tts.events[last_synthesized] == ("synthesized", 3)
    assert [e for e in tts.events if e[0] == "synthesized"] == [
        ("synthesized", i) for i in range(4)
    ]
    assert duration(first + rest, "mp3") == pytest.approx(4 * SECONDS_PER_SENTENCE, abs=0.1)


def parse_sse(body: str) -> list[dict[str, Any]]:
    assert body.endswith("\n\n")
    events = []
    for block in body.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        assert "\n" not in block, "one data line per event, no id: or event: lines"
        events.append(json.loads(block.removeprefix("data: ")))
    return events


def test_sse_stream_carries_base64_audio_then_usage(server: AppServer) -> None:
    payload = {
        "model": "tts",
        "voice": "af_alloy",
        "input": "Hello there. General Kenobi.",
        "response_format": "mp3",
        "stream_format": "sse",
    }
    response = server.http().post("/v1/audio/speech", json=payload)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    *deltas, done = events
    assert deltas and all(e["type"] == "speech.audio.delta" for e in deltas)
    audio = b"".join(base64.b64decode(e["audio"], validate=True) for e in deltas)
    assert duration(audio, "mp3") == pytest.approx(2 * SECONDS_PER_SENTENCE, abs=0.1)
    assert done["type"] == "speech.audio.done"
    usage = done["usage"]
    assert set(usage) >= {"input_tokens", "output_tokens", "total_tokens"}
    assert all(isinstance(usage[k], int) and usage[k] > 0 for k in usage)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


# --- formats ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(CONTENT_TYPES))
def test_every_format_has_its_content_type_and_decodes(client: openai.OpenAI, fmt: str) -> None:
    response = client.audio.speech.create(
        model="tts",
        voice="af_alloy",
        input="First sentence. Second sentence.",
        response_format=fmt,  # type: ignore[arg-type]
    )
    assert response.response.headers["content-type"] == CONTENT_TYPES[fmt]
    expected = 2 * SECONDS_PER_SENTENCE
    assert duration(response.content, fmt) == pytest.approx(expected, abs=0.1)
    if fmt == "pcm":  # headerless s16le mono at 24 kHz: exactly two bytes a sample
        assert len(response.content) == 2 * round(expected * 24_000)


def test_speed_reaches_the_engine(client: openai.OpenAI, tts: FakeTtsBackend) -> None:
    fast = client.audio.speech.create(
        model="tts", voice="af_alloy", input="Go on. Stop now.", response_format="wav", speed=2.0
    )
    assert tts.requests[-1].speed == 2.0
    assert duration(fast.content, "wav") == pytest.approx(SECONDS_PER_SENTENCE, abs=0.05)


# --- instructions -------------------------------------------------------------


def test_instructions_reach_an_engine_that_follows_them(
    client: openai.OpenAI, styled: FakeStyledTtsBackend
) -> None:
    client.audio.speech.create(
        model="styled",
        voice="af_alloy",
        input="Hi.",
        instructions="Speak softly, like a librarian.",
        response_format="pcm",
    )
    assert styled.requests[-1].instructions == "Speak softly, like a librarian."


def test_instructions_are_ignored_by_an_engine_that_cannot_follow_them(
    client: openai.OpenAI, tts: FakeTtsBackend
) -> None:
    """As OpenAI's tts-1 does: the request succeeds and the engine never sees them."""
    response = client.audio.speech.create(
        model="tts", voice="af_alloy", input="Hi.", instructions="Shout!", response_format="pcm"
    )
    assert response.content
    assert tts.requests[-1].instructions is None


def test_models_say_whether_they_follow_instructions(server: AppServer) -> None:
    http = server.http()
    assert http.get("/v1/models/styled").json()["instructions"] == "style"  # from its files
    http.post("/v1/audio/speech", json={"model": "tts", "voice": "af_alloy", "input": "Hi."})
    assert http.get("/v1/models/tts").json()["instructions"] == "none"  # from its engine
    assert "instructions" not in http.get("/v1/models/stt").json()


# --- voices -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("am_echo", "am_echo"),  # an engine voice
        ("echo", "am_echo"),  # an OpenAI name the engine has under a prefix
        ("onyx", "am_echo"),  # an OpenAI name: the engine's male voice
        ("shimmer", "bf_emma"),  # mapped by the config's voices: section
    ],
)
def test_voice_names_map_to_engine_voices(
    client: openai.OpenAI, tts: FakeTtsBackend, requested: str, expected: str
) -> None:
    client.audio.speech.create(model="tts", voice=requested, input="Hi.", response_format="pcm")
    assert tts.requests[-1].voice == expected


@pytest.mark.parametrize("requested", ["alloy", "nova", "coral"])
def test_female_openai_voices_get_a_female_engine_voice(
    client: openai.OpenAI, tts: FakeTtsBackend, requested: str
) -> None:
    client.audio.speech.create(model="tts", voice=requested, input="Hi.", response_format="pcm")
    assert VOICE_GENDER[tts.requests[-1].voice] == "female"


def test_voice_given_as_an_object_with_an_id(client: openai.OpenAI, tts: FakeTtsBackend) -> None:
    response = client.audio.speech.create(
        model="tts",
        voice={"id": "bf_emma"},
        input="Hi.",
        response_format="pcm",
    )
    assert response.content
    assert tts.requests[-1].voice == "bf_emma"


def test_voices_route_lists_each_tts_models_voices(server: AppServer) -> None:
    http = server.http()
    everything = http.get("/v1/audio/voices")
    assert everything.status_code == 200
    body = everything.json()
    assert body["object"] == "list"
    assert {(v["model"], v["id"], v["language"], v["gender"]) for v in body["data"]} == {
        (model, v.id, v.language, v.gender) for v in FAKE_VOICES for model in ("tts", "styled")
    }
    only_tts = [v for v in body["data"] if v["model"] == "tts"]
    assert http.get("/v1/audio/voices", params={"model": "tts"}).json()["data"] == only_tts
    assert http.get("/v1/audio/voices", params={"model": "stt"}).json()["data"] == []
    missing = http.get("/v1/audio/voices", params={"model": "nope"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_models_say_which_are_tts_and_list_their_voices(client: openai.OpenAI) -> None:
    models = {model.id: model.model_dump() for model in client.models.list()}
    assert models["tts"]["kind"] == "tts"
    assert [v["id"] for v in models["tts"]["voices"]] == [v.id for v in FAKE_VOICES]
    assert models["stt"]["kind"] == "stt"
    assert "voices" not in models["stt"]


# --- bad requests: a 4xx before any audio byte --------------------------------

GOOD = {"model": "tts", "voice": "af_alloy", "input": "Hello."}


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"speed": 0.1}, "speed"),
        ({"speed": 5}, "speed"),
        ({"response_format": "ogg"}, "response_format"),
        ({"stream_format": "chunks"}, "stream_format"),
        ({"input": ""}, "input"),
        ({"input": "   \n\t "}, "input"),
        ({"input": "a" * 4097}, "input"),
        ({"pitch": 1.5}, "pitch"),
        ({"voice": {"name": "af_alloy"}}, None),
        ({"model": "stt"}, "model"),
    ],
    ids=[
        "speed-too-low",
        "speed-too-high",
        "unknown-format",
        "unknown-stream-format",
        "empty-input",
        "blank-input",
        "input-too-long",
        "unknown-field",
        "voice-object-without-id",
        "stt-model",
    ],
)
def test_bad_requests_get_a_400_before_any_audio(
    server: AppServer, tts: FakeTtsBackend, change: dict[str, Any], param: str | None
) -> None:
    before = len(tts.requests)
    response = server.http().post("/v1/audio/speech", json=GOOD | change)
    assert_openai_error(response, 400, param)
    assert len(tts.requests) == before, "nothing was synthesized"
    server.assert_healthy()


def test_a_body_that_is_not_json_is_a_400_saying_so(server: AppServer) -> None:
    response = server.http().post(
        "/v1/audio/speech",
        content=b'{"model": "tts", input',
        headers={"content-type": "application/json"},
    )
    error = assert_openai_error(response, 400)
    assert error["param"] is None
    assert "could not parse the JSON body" in error["message"]


def test_exactly_4096_characters_are_accepted(client: openai.OpenAI) -> None:
    response = client.audio.speech.create(
        model="tts", voice="af_alloy", input="a" * 4096, response_format="pcm"
    )
    assert response.content


def test_unknown_voice_is_a_400_listing_the_voices(
    client: openai.OpenAI, tts: FakeTtsBackend
) -> None:
    before = len(tts.requests)
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="tts", voice="af_nobody", input="Hello.")
    error = caught.value
    assert error.status_code == 400
    assert error.param == "voice"
    assert error.type == "invalid_request_error"
    assert "af_nobody" in error.message
    assert all(v.id in error.message for v in FAKE_VOICES)
    assert len(tts.requests) == before


def test_speech_to_an_stt_model_says_which_route_to_use(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="stt", voice="alloy", input="Hello.")
    assert caught.value.code == "model_kind_mismatch"
    assert "/v1/audio/transcriptions" in caught.value.message


def test_unknown_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.audio.speech.create(model="tts-9", voice="alloy", input="Hello.")
    assert caught.value.code == "model_not_found"


def test_openai_client_speed_out_of_range_is_a_bad_request(client: openai.OpenAI) -> None:
    for speed in (0.1, 5.0):
        with pytest.raises(openai.BadRequestError) as caught:
            client.audio.speech.create(model="tts", voice="alloy", input="Hi.", speed=speed)
        assert caught.value.param == "speed"


def test_the_synthesis_plan_passes_instructions_only_to_engines_that_follow_them(
    tts: FakeTtsBackend, styled: FakeStyledTtsBackend, tmp_path: Path
) -> None:
    """The one place the route and ``bragi speak --instructions`` decide it."""
    from bragi.speech import synthesis_plan

    plain = tts.load(tmp_path, "cpu", tts.options_model())
    follows = styled.load(tmp_path, "cpu", styled.options_model())
    assert isinstance(plain, TextToSpeech) and isinstance(follows, TextToSpeech)
    ignored, _ = synthesis_plan("Hi.", "af_alloy", 1.0, plain, instructions="Shout.")
    kept, _ = synthesis_plan("Hi.", "af_alloy", 1.0, follows, instructions="Shout.")
    assert ignored.instructions is None and kept.instructions == "Shout."
