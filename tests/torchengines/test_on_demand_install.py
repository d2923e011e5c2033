"""Engine environments installed on demand (``install_engines``), for real: ``bragi
serve`` with a SpeechBrain model (the cheapest torch environment) and no environment
installs it at boot, says so on /health/ready, ``bragi ps`` and in a 503 with
Retry-After, then serves through the openai client; an install that cannot succeed
says pip's reason and the other models serve; shutdown during an install is prompt
and leaves neither pip nor a half environment.

The tiny model is written with the session's SpeechBrain environment; the servers'
installs go into data directories of their own (pip's cache makes them cheaper).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from livesupport import LiveServer, start_server
from speech import SpeechSample
from tinymodels.speechbrain import write_speechbrain
from torchenvs import TORCH_INDEX, EngineEnv

pytestmark = [pytest.mark.slow]

INSTALL_TIMEOUT = 900.0


@pytest.fixture(scope="module")
def ctc_model(
    engine_env: Callable[[str], EngineEnv], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    root = tmp_path_factory.mktemp("on-demand-model")
    return write_speechbrain(engine_env("speechbrain"), {"ctc": root / "ctc"})["ctc"]


def _config(root: Path, models: dict[str, dict[str, object]]) -> Path:
    path = root / "config.yaml"
    path.write_text(json.dumps({"models": models}))  # JSON is YAML
    return path


def _ready(server: LiveServer) -> tuple[int, dict[str, object]]:
    response = httpx.get(f"{server.base_url}/health/ready", timeout=10)
    return response.status_code, response.json()


def _wait_settled(server: LiveServer, alias: str, timeout: float) -> dict[str, object]:
    """/health/ready once ``alias`` is no longer pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, body = _ready(server)
        if alias not in body.get("pending", {}):  # type: ignore[operator]
            return body
        assert server.process.poll() is None, server.log_path.read_text()[-3000:]
        time.sleep(2)
    pytest.fail(f"{alias} still pending after {timeout:.0f} s:\n{server.log_path.read_text()}")


def _ps(server: LiveServer) -> str:
    command = [sys.executable, "-m", "bragi", "ps", "--url", server.base_url]
    done = subprocess.run(
        [*command, "--api-key", server.api_key], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _wait_for_line(server: LiveServer, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log_path.read_text():
        assert time.monotonic() < deadline, server.log_path.read_text()[-3000:]
        assert server.process.poll() is None, server.log_path.read_text()[-3000:]
        time.sleep(0.5)


def test_a_missing_engine_is_installed_at_boot_then_serves(
    ctc_model: Path, speech: dict[str, SpeechSample], tmp_path: Path, models_cache: Path
) -> None:
    data = tmp_path / "data"
    config = _config(tmp_path, {"sb": {"model": str(ctc_model)}})
    env = {"BRAGI_INSTALL_ENGINES": "1", "BRAGI_TORCH_INDEX": TORCH_INDEX}
    with start_server(data, models_cache, config=config, env=env, ready="/health") as server:
        client = server.client()
        # meanwhile: a 503 that says so, with Retry-After (checked before the upload is read)
        with pytest.raises(openai.APIStatusError) as refused:
            client.audio.transcriptions.create(model="sb", file=speech["beckett"].path)
        assert refused.value.status_code == 503
        assert refused.value.response.headers["retry-after"] == "30"
        error = refused.value.response.json()["error"]
        assert error["code"] == "engine_installing"
        assert "engine is being installed (installing the speechbrain engine" in error["message"]
        status, body = _ready(server)
        assert status == 503 and body["models"] == {"sb": "installing"}
        assert str(body["pending"]["sb"]).startswith(  # type: ignore[index]
            "installing the speechbrain engine environment ("
        )
        listing = _ps(server).splitlines()
        row = next(i for i, line in enumerate(listing) if line.startswith("sb "))
        assert " installing " in listing[row] and "speechbrain" in listing[row]
        assert "installing the speechbrain engine environment" in listing[row + 1]

        body = _wait_settled(server, "sb", INSTALL_TIMEOUT)
        assert body["status"] == "ready", body
        result = client.audio.transcriptions.create(
            model="sb", file=speech["beckett"].path, response_format="verbose_json"
        )
        assert isinstance(result.text, str) and result.duration == pytest.approx(10, abs=1)
        manifest = json.loads((data / "envs" / "speechbrain" / "bragi-env.json").read_text())
        assert manifest["packages"]["speechbrain"] == "1.1.2"
        log = server.log_path.read_text()
        assert "installing the speechbrain engine environment in " in log
        assert "install speechbrain: $ " in log  # each step of `bragi backend install`
        assert "installed the speechbrain engine environment in " in log
    shutil.rmtree(data / "envs")  # 1.2 GB that nothing else uses


def test_an_install_that_fails_says_why_and_the_rest_serve(
    ctc_model: Path, speech: dict[str, SpeechSample], tmp_path: Path, models_cache: Path
) -> None:
    empty = tmp_path / "no-packages"
    empty.mkdir()
    models = {"sb": {"model": str(ctc_model)}, "tts-1": {"model": "piper:en_US-joe-medium"}}
    config = _config(tmp_path, models)
    env = {  # pip finds nothing: torch==2.13.0 cannot be satisfied (pip says why)
        "BRAGI_INSTALL_ENGINES": "1",
        "BRAGI_TORCH_INDEX": "pypi",
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(empty),
    }
    data = tmp_path / "data"
    with start_server(data, models_cache, config=config, env=env, ready="/health") as server:
        body = _wait_settled(server, "sb", 300)
        assert body["status"] == "degraded" and body["failed"] == {"sb": "install failed"}
        client = server.client()
        with pytest.raises(openai.APIStatusError) as refused:
            client.audio.transcriptions.create(model="sb", file=speech["beckett"].path)
        assert refused.value.status_code == 503
        message = refused.value.response.json()["error"]["message"]
        assert "installing the speechbrain engine environment failed" in message
        assert "torch==2.13.0" in message  # pip's reason: no such distribution, or a conflict
        listing = _ps(server).splitlines()
        row = next(i for i, line in enumerate(listing) if line.startswith("sb "))
        assert " failed " in listing[row]
        assert "installing the speechbrain engine environment failed" in listing[row + 1]
        audio = client.audio.speech.create(model="tts-1", voice="alloy", input="Still here.")
        assert audio.content[:4] == b"ID3" or len(audio.content) > 1000  # mp3 from Piper
        assert not (data / "envs" / "speechbrain").exists()  # the failed install removed it


def test_shutdown_during_an_install_is_prompt_and_leaves_nothing(
    ctc_model: Path, tmp_path: Path, models_cache: Path
) -> None:
    data = tmp_path / "data"
    config = _config(tmp_path, {"sb": {"model": str(ctc_model)}})
    env = {"BRAGI_INSTALL_ENGINES": "1", "BRAGI_TORCH_INDEX": TORCH_INDEX}
    with start_server(data, models_cache, config=config, env=env, ready="/health") as server:
        _wait_for_line(server, "install speechbrain: $ ")  # the install is under way
        environment = data / "envs" / "speechbrain"
        _wait_for_line(server, "-m pip install")  # pip is running
    # start_server's exit asserts the server stopped within bragi serve's own bound
    assert "Traceback" not in server.log_path.read_text()
    assert not environment.exists()
    pip_left = subprocess.run(
        ["pgrep", "-f", str(environment)], capture_output=True, text=True, check=False
    )
    assert pip_left.stdout == "", f"processes of the install still run: {pip_left.stdout}"
