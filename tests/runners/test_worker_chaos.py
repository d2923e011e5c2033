"""Chaos on worker processes, through the real app over HTTP: a worker killed with SIGKILL
in the middle of a stream, and a worker that stops reading its socket (SIGSTOP). Each
test asserts what the client sees and what is left: the dead or stopped process gone,
no lease held, and the next request served by a new worker.

The scripted engines (``childfakes``) hold a request at segment or sentence 1 until its
gate file opens, so the kill lands mid-stream, at a known point.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from appserver import AppServer, fake_settings, serve_app
from bragi.config import ModelConfig
from childfakes import STT, TTS, Script
from fakes import make_model_dir, wait_until, wav_bytes, wav_of
from runnerkit import process_exists

#: Short, so the stopped worker's request fails fast; long enough for a busy machine.
WORKER_TIMEOUT = 5.0


@pytest.fixture
def server(tmp_path: Path, script: Script) -> Iterator[AppServer]:
    """``stt`` and ``tts`` in workers; every request waits at item 1 for gate 1."""
    options: dict[str, Any] = {"workdir": str(script.dir), "gate_at": 1}
    models = {
        alias: ModelConfig(
            model=str(make_model_dir(tmp_path / "models", backend.name, alias)),
            backend=backend.name,
            runner="worker",
            worker_timeout=WORKER_TIMEOUT,
            options=options,
        )
        for alias, backend in {"stt": STT, "tts": TTS}.items()
    }
    with serve_app(fake_settings(tmp_path / "data", models), [STT, TTS]) as live:
        yield live


def worker_pid(server: AppServer, alias: str) -> int:
    pid = getattr(server.manager.get(alias).engine, "pid", None)
    assert isinstance(pid, int), f"{alias} runs in a worker"
    return pid


def kill_when_waiting(server: AppServer, script: Script, alias: str) -> int:
    """SIGKILL ``alias``'s worker once it waits at item 1; its pid."""
    script.wait_for("waiting 1")
    pid = worker_pid(server, alias)
    os.kill(pid, signal.SIGKILL)
    return pid


def assert_recovered(server: AppServer, script: Script, alias: str, dead: int) -> None:
    """The dead worker is reaped, no lease is held, and a new worker serves."""
    wait_until(lambda: not process_exists(dead), 10, f"worker {dead} to be reaped")
    wait_until(lambda: server.manager.get(alias).in_use == 0, 10, "the lease to go back")
    script.open_gate(1)  # from now on nothing waits
    client = server.client()
    if alias == "stt":
        assert client.audio.transcriptions.create(model="stt", file=("a.wav", wav_bytes())).text
    else:
        assert client.audio.speech.create(model="tts", voice="alba", input="Back.").content
    assert worker_pid(server, alias) != dead


def test_a_worker_killed_mid_transcription_stream_ends_it_with_an_error_event(
    server: AppServer, script: Script
) -> None:
    client = server.client()
    stream = client.audio.transcriptions.create(
        model="stt", file=("a.wav", wav_bytes()), stream=True
    )
    events = iter(stream)
    assert next(events).type == "transcript.text.delta"
    dead = kill_when_waiting(server, script, "stt")
    with pytest.raises(openai.APIError, match="was killed by SIGKILL during 'next'") as failed:
        next(events)
    assert isinstance(failed.value.body, dict)
    assert failed.value.body["code"] == "model_unavailable"
    assert_recovered(server, script, "stt", dead)


def test_a_worker_killed_mid_speech_sse_ends_it_with_an_error_event(
    server: AppServer, script: Script
) -> None:
    body = {"model": "tts", "voice": "alba", "input": "One. Two. Three.", "stream_format": "sse"}
    with server.http().stream("POST", "/v1/audio/speech", json=body) as response:
        assert response.status_code == 200
        lines = (line for line in response.iter_lines() if line)
        assert '"speech.audio.delta"' in next(lines)
        dead = kill_when_waiting(server, script, "tts")
        rest = list(lines)
    assert rest[-1].startswith('data: {"type":"error"'), rest[-1]
    assert "killed by SIGKILL" in rest[-1] and '"code":"model_unavailable"' in rest[-1]
    assert_recovered(server, script, "tts", dead)


def test_a_worker_killed_mid_audio_stream_cuts_the_body_short(
    server: AppServer, script: Script
) -> None:
    """Raw audio has no way to say "error" once it began: the body ends without its
    last chunk, which every HTTP client reports, instead of looking complete."""
    body = {"model": "tts", "voice": "alba", "input": "One. Two. Three.", "response_format": "pcm"}
    with server.http().stream("POST", "/v1/audio/speech", json=body) as response:
        assert response.status_code == 200
        chunks = response.iter_bytes()
        assert next(chunks)
        dead = kill_when_waiting(server, script, "tts")
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
            list(chunks)
    assert_recovered(server, script, "tts", dead)


def test_a_worker_killed_mid_transcription_is_a_503(server: AppServer, script: Script) -> None:
    killed: list[int] = []
    killer = threading.Thread(
        target=lambda: killed.append(kill_when_waiting(server, script, "stt")), daemon=True
    )
    killer.start()
    with pytest.raises(openai.InternalServerError) as failed:
        server.client().audio.transcriptions.create(model="stt", file=("a.wav", wav_bytes()))
    killer.join(30)
    assert failed.value.status_code == 503
    error = failed.value.body  # the error object itself
    assert isinstance(error, dict) and error["code"] == "model_unavailable"
    assert "killed by SIGKILL" in error["message"]
    assert_recovered(server, script, "stt", killed[0])


def test_a_worker_stopped_with_its_socket_full_is_killed_and_replaced(
    server: AppServer, script: Script
) -> None:
    """SIGSTOP: the worker reads nothing more. A request whose audio is larger than the
    socket's buffer blocks in the send; past ``worker_timeout`` it is a 503, the stopped
    process is killed, and the next request starts a new worker."""
    script.open_gate(1)
    client = server.client()
    assert client.audio.transcriptions.create(model="stt", file=("a.wav", wav_bytes())).text
    stopped = worker_pid(server, "stt")
    os.kill(stopped, signal.SIGSTOP)
    try:
        long_audio = wav_of(np.full(30 * 16_000, 0.25, dtype=np.float32))  # 1.9 MB to send
        with pytest.raises(openai.InternalServerError) as failed:
            client.audio.transcriptions.create(model="stt", file=("long.wav", long_audio))
        assert failed.value.status_code == 503
        assert f"did not answer 'transcribe' within {WORKER_TIMEOUT:g} s" in str(failed.value)
        wait_until(lambda: not process_exists(stopped), 10, "the stopped worker to be killed")
    finally:
        if process_exists(stopped):
            os.kill(stopped, signal.SIGKILL)
    assert client.audio.transcriptions.create(model="stt", file=("a.wav", wav_bytes())).text
    assert worker_pid(server, "stt") != stopped
    assert server.manager.get("stt").in_use == 0
