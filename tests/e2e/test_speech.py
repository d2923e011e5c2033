"""Text to speech end to end: Piper and Kokoro through the official openai client."""

from __future__ import annotations

import io

import av
import numpy as np
import openai
import pytest

from livesupport import LiveServer
from speech import word_error_rate

pytestmark = pytest.mark.slow

TEXT = "The quick brown fox jumps over the lazy dog. It was a bright cold day in April."
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


def _decode(data: bytes) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
    samples = np.concatenate(frames).astype(np.float32)
    if np.abs(samples).max() > 1.5:  # integer samples
        samples /= 32768.0
    return samples, rate


def _speak(server: LiveServer, model: str, fmt: str, speed: float = 1.0, text: str = TEXT):
    response = server.client().audio.speech.with_raw_response.create(
        model=model,
        voice="alloy",
        input=text,
        response_format=fmt,
        speed=speed,  # type: ignore[arg-type]
    )
    return response.headers["content-type"], response.content


@pytest.fixture(scope="module")
def reference_seconds(server: LiveServer) -> float:
    _, wav = _speak(server, "tts-1", "wav")
    samples, rate = _decode(wav)
    return len(samples) / rate


@pytest.mark.parametrize("fmt", list(CONTENT_TYPES))
def test_every_format(server: LiveServer, reference_seconds: float, fmt: str) -> None:
    content_type, data = _speak(server, "tts-1", fmt)
    assert content_type == CONTENT_TYPES[fmt]
    if fmt == "pcm":
        assert len(data) % 2 == 0
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        rate = 24_000
    else:
        samples, rate = _decode(data)
        # Opus always decodes at 48 kHz; the stream's header records the 24 kHz input.
        assert rate == (48_000 if fmt == "opus" else 24_000)
    seconds = len(samples) / rate
    # Piper's duration predictor is stochastic: runs differ by a few per cent.
    assert seconds == pytest.approx(reference_seconds, rel=0.1)
    assert float(np.sqrt(np.mean(samples**2))) > 0.01  # not silence


def test_speed_changes_duration(server: LiveServer, reference_seconds: float) -> None:
    durations = {}
    for speed in (0.5, 2.0, 4.0):
        _, wav = _speak(server, "tts-1", "wav", speed)
        samples, rate = _decode(wav)
        durations[speed] = len(samples) / rate
    assert durations[2.0] == pytest.approx(reference_seconds / 2, rel=0.25)
    assert durations[0.5] == pytest.approx(reference_seconds * 2, rel=0.25)
    # Past the engine's faithful range the server time-stretches the rest.
    assert durations[4.0] == pytest.approx(reference_seconds / 4, rel=0.25)


@pytest.mark.parametrize(("model", "bound"), [("tts-1", 0.15), ("kokoro", 0.5)])
def test_round_trip_through_whisper(server: LiveServer, model: str, bound: float) -> None:
    _, mp3 = _speak(server, model, "mp3")
    heard = server.client().audio.transcriptions.create(model="whisper-1", file=("s.mp3", mp3))
    assert word_error_rate(TEXT, heard.text) < bound, heard.text


def test_sse_stream_decodes(server: LiveServer) -> None:
    import base64
    import json

    with server.http() as http:
        response = http.post(
            "/v1/audio/speech",
            json={
                "model": "tts-1",
                "voice": "alloy",
                "input": TEXT,
                "response_format": "wav",
                "stream_format": "sse",
            },
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(block[len("data: ") :]) for block in response.text.split("\n\n") if block]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "speech.audio.done"
    assert set(events[-1]["usage"]) == {"input_tokens", "output_tokens", "total_tokens"}
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    samples, rate = _decode(audio)
    assert len(samples) / rate > 2.0


def test_voices_listed(server: LiveServer) -> None:
    with server.http() as http:
        voices = http.get("/v1/audio/voices", params={"model": "kokoro"}).json()["data"]
    ids = {voice["id"] for voice in voices}
    assert {"jf_alpha", "jm_kumo"} <= ids
    assert all(voice["model"] == "kokoro" for voice in voices)


def test_bad_speech_requests(server: LiveServer) -> None:
    client = server.client()
    with pytest.raises(openai.BadRequestError, match="Available voices"):
        client.audio.speech.create(model="tts-1", voice="nobody-here", input="Hi.")
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", speed=9)
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="whisper-1", voice="alloy", input="Hi.")
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="tts-1", voice="alloy", input="x" * 4097)
    server.assert_healthy()
