"""SIGTERM with requests in flight, as Kubernetes stops a pod: ``bragi serve`` (Whisper
tiny.en and Piper, real engines) is signalled while a streamed transcription and a
streamed speech are half-way. Readiness drops at once and new connections are refused,
while the two requests run to their end, complete and correct; then the process exits,
cleanly, well within the pod's ``terminationGracePeriodSeconds``."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from fakes import wait_until
from livesupport import start_server
from speech import SpeechSample, word_error_rate

pytestmark = pytest.mark.slow

PCM = "pcm"
DEPLOYMENT = Path(__file__).parents[2] / "deploy" / "kubernetes" / "base" / "deployment.yaml"
TEN_SENTENCES = " ".join(
    [
        "The birch canoe slid on the smooth planks.",
        "Glue the sheet to the dark blue background.",
        "It's easy to tell the depth of a well.",
        "These days a chicken leg is a rare dish.",
        "Rice is often served in round bowls.",
        "The juice of lemons makes fine punch.",
        "The box was thrown beside the parked truck.",
        "The hogs were fed chopped corn and garbage.",
        "Four hours of steady work faced us.",
        "A large size in stockings is hard to sell.",
    ]
)


def termination_grace_seconds() -> int:
    found = re.search(r"terminationGracePeriodSeconds:\s*(\d+)", DEPLOYMENT.read_text())
    assert found, f"{DEPLOYMENT} sets terminationGracePeriodSeconds"
    return int(found[1])


def ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200
    except httpx.TransportError:  # refused: the listener is closed
        return False


def test_sigterm_drains_requests_in_flight_and_refuses_new_ones(
    tmp_path: Path, models_cache: Path, speech: dict[str, SpeechSample]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "models:\n"
        "  stt: {model: whisper-tiny.en, preload: true}\n"
        "  tts: {model: 'piper:en_US-joe-medium', preload: true}\n"
    )
    grace = termination_grace_seconds()
    beckett = speech["beckett"]
    with start_server(tmp_path / "data", models_cache, config=config) as live:
        headers = {"Authorization": f"Bearer {live.api_key}"}
        http = httpx.Client(base_url=live.base_url, headers=headers, timeout=120)
        spoken = http.stream(
            "POST",
            "/v1/audio/speech",
            json={
                "model": "tts",
                "voice": "alloy",
                "input": TEN_SENTENCES,
                "response_format": "pcm",
            },
        )
        heard = http.stream(
            "POST",
            "/v1/audio/transcriptions",
            data={"model": "stt", "stream": "true"},
            files={"file": ("beckett.wav", beckett.path.read_bytes(), "audio/wav")},
        )
        with spoken as speech_response, heard as transcript_response:
            assert speech_response.status_code == 200 and transcript_response.status_code == 200
            audio = speech_response.iter_bytes()
            events = (line for line in transcript_response.iter_lines() if line)
            received = bytearray(next(audio))
            first_event = next(events)
            assert "transcript.text.delta" in first_event

            live.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            wait_until(lambda: not ready(live.base_url), 5, "readiness to drop")
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{live.base_url}/v1/models", headers=headers, timeout=5)

            for chunk in audio:  # the requests in flight go on to their end
                received += chunk
            rest = list(events)
        http.close()
        assert len(received) > 10 * 24_000  # ten sentences of 16-bit audio at 24 kHz
        assert len(received) % 2 == 0
        assert '"transcript.text.done"' in rest[-1]
        text = json.loads(rest[-1].removeprefix("data: "))["text"]
        assert word_error_rate(beckett.text, text) <= 0.2, text

        code = live.process.wait(timeout=grace)
        took = time.monotonic() - signalled
        log = live.log()
        # uvicorn shuts down, then ends by the signal it was sent, as a process should
        assert code in (0, -signal.SIGTERM), log[-2000:]
        assert took < grace, f"exited {took:.1f} s after SIGTERM; the pod gets {grace} s"
        assert "Application shutdown complete" in log and "Traceback" not in log, log[-3000:]
