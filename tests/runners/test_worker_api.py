"""Models forced into workers (``runner: worker``), served by the real app over HTTP."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from appserver import AppServer, fake_settings, serve_app
from bragi.config import ModelConfig
from bragi.runners import WorkerSpeechToText
from childfakes import ISOLATED, STT, TTS, Script
from fakes import make_model_dir, wav_bytes
from runnerkit import STEP_TIMEOUT, process_exists


@contextmanager
def worker_server(tmp_path: Path, script: Script, runner: str = "worker") -> Iterator[AppServer]:
    options: dict[str, Any] = {"workdir": str(script.dir)}
    models = {
        alias: ModelConfig(
            model=str(make_model_dir(tmp_path / "models", backend.name, alias)),
            backend=backend.name,
            runner=runner,  # type: ignore[arg-type]
            worker_timeout=STEP_TIMEOUT,
            options=options,
        )
        for alias, backend in {"whisper-1": STT, "tts-1": TTS}.items()
    }
    with serve_app(fake_settings(tmp_path / "data", models), [STT, TTS]) as server:
        yield server


@pytest.mark.parametrize("runner", ["process", "worker"])
def test_a_model_serves_the_same_from_either_runner(
    tmp_path: Path, script: Script, runner: str
) -> None:
    with worker_server(tmp_path, script, runner) as server:
        client = server.client()
        wav = ("a.wav", wav_bytes(1.0))
        assert client.audio.transcriptions.create(model="whisper-1", file=wav).text == (
            "word0 word1 word2"
        )
        verbose = client.audio.transcriptions.create(
            model="whisper-1",
            file=wav,
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )
        assert [w.word for w in verbose.words or []] == ["word0", "word1", "word2"]
        events = client.audio.transcriptions.create(model="whisper-1", file=wav, stream=True)
        assert [e.type for e in events][-1] == "transcript.text.done"

        speech = client.audio.speech.create(
            model="tts-1", voice="alba", input="Hello there. Bye.", response_format="wav"
        )
        assert speech.content[:4] == b"RIFF" and len(speech.content) > 20_000
        with pytest.raises(openai.BadRequestError, match="zed"):
            client.audio.speech.create(model="tts-1", voice="zed", input="Hello.")
        voices = server.http().get("/v1/audio/voices", params={"model": "tts-1"}).json()
        assert [v["id"] for v in voices["data"]] == ["alba", "bert"]

        engine = server.manager.get("whisper-1").engine
        assert isinstance(engine, WorkerSpeechToText) == (runner == "worker")
    assert "torch" not in sys.modules


def test_unloading_a_worker_model_ends_its_process(tmp_path: Path, script: Script) -> None:
    with worker_server(tmp_path, script) as server:
        admin = server.http(server.admin_key)
        assert admin.post("/admin/models/whisper-1/load").json()["state"] == "loaded"
        engine = server.manager.get("whisper-1").engine
        assert isinstance(engine, WorkerSpeechToText) and engine.pid is not None
        pid = engine.pid
        assert process_exists(pid)
        # the worker's own memory, not the little the server grew while it started
        [listed] = [m for m in admin.get("/admin/models").json()["data"] if m["id"] == "whisper-1"]
        assert listed["memory_bytes"] > 10 * 1024 * 1024
        assert admin.post("/admin/models/whisper-1/unload").json()["unloaded"] is True
        assert not process_exists(pid)
        assert script.events()[-1] == "engine closed"


def test_a_worker_crash_is_a_503_and_the_server_keeps_serving(
    tmp_path: Path, script: Script
) -> None:
    with worker_server(tmp_path, script) as server:
        client = server.client()
        wav = ("a.wav", wav_bytes(1.0))
        with pytest.raises(openai.InternalServerError) as crash:
            client.audio.transcriptions.create(model="whisper-1", file=wav, prompt="crash@1")
        assert crash.value.status_code == 503
        assert "exited with code 3" in str(crash.value)
        speech = client.audio.speech.create(model="tts-1", voice="bert", input="Still here.")
        assert speech.content  # the other model was never affected
        text = client.audio.transcriptions.create(model="whisper-1", file=wav).text
        assert text == "word0 word1 word2"  # a new worker took over
        assert server.manager.get("whisper-1").state == "loaded"


def test_a_model_whose_environment_is_missing_says_how_to_install_it(
    tmp_path: Path, script: Script
) -> None:
    model_dir = make_model_dir(tmp_path / "models", ISOLATED.name)
    models = {"sb": ModelConfig(model=str(model_dir), backend=ISOLATED.name)}
    with serve_app(fake_settings(tmp_path / "data", models), [ISOLATED]) as server:
        response = server.http().post(
            "/v1/audio/transcriptions", data={"model": "sb"}, files={"file": ("a.wav", wav_bytes())}
        )
        assert response.status_code == 503
        assert "run `bragi backend install script-isolated`" in response.json()["error"]["message"]
