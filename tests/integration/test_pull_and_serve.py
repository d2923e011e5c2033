"""Models from the (stand-in) hub: `bragi pull/list/show/rm`, and a server that downloads
its configured model in the background, then serves it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hubstub import WHISPER_REPO, HubStub
from livesupport import start_server
from speech import SpeechSample, word_error_rate

pytestmark = pytest.mark.slow


def _bragi(*args: str, data_dir: Path, endpoint: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRAGI_", "HF_"))}
    env |= {"BRAGI_DATA_DIR": str(data_dir), "HF_ENDPOINT": endpoint}
    return subprocess.run(
        [sys.executable, "-m", "bragi", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_pull_list_show_rm(hub_stub: HubStub, tmp_path: Path) -> None:
    pulled = _bragi("pull", WHISPER_REPO, data_dir=tmp_path, endpoint=hub_stub.url)
    assert pulled.returncode == 0, pulled.stderr
    assert "100.0%" in pulled.stderr  # the progress bar reached the end
    model_dir = Path(pulled.stdout.strip())
    assert (model_dir / "model.bin").is_file()

    listed = _bragi("list", data_dir=tmp_path, endpoint=hub_stub.url).stdout
    line = next(line for line in listed.splitlines() if WHISPER_REPO in line)
    assert "faster-whisper" in line and "MB" in line

    shown = _bragi("show", WHISPER_REPO, data_dir=tmp_path, endpoint=hub_stub.url).stdout
    assert str(model_dir) in shown

    removed = _bragi("rm", WHISPER_REPO, data_dir=tmp_path, endpoint=hub_stub.url)
    assert removed.returncode == 0 and "deleted" in removed.stdout
    assert not model_dir.exists()
    again = _bragi("rm", WHISPER_REPO, data_dir=tmp_path, endpoint=hub_stub.url)
    assert again.returncode == 1 and "not downloaded" in again.stderr


def test_missing_repo_is_one_clear_line(hub_stub: HubStub, tmp_path: Path) -> None:
    result = _bragi("pull", "nobody/nothing", data_dir=tmp_path, endpoint=hub_stub.url)
    assert result.returncode == 1
    assert "not found" in result.stderr and "Traceback" not in result.stderr


def test_server_downloads_in_background_then_serves(
    hub_stub: HubStub, tmp_path: Path, speech: dict[str, SpeechSample]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"models:\n  hub-whisper:\n    model: {WHISPER_REPO}\n")
    hub_stub.cut_once(WHISPER_REPO, "model.bin", after_bytes=5_000_000)  # and resumed
    env = {"HF_ENDPOINT": hub_stub.url, "HF_HUB_OFFLINE": "0"}
    with start_server(tmp_path / "data", tmp_path / "models", config=config, env=env) as server:
        log = server.log()
        # The server was up (answering /health) before the download finished, and the
        # pull's progress went to the log.
        assert log.index("Application startup complete") < log.index("pulled " + WHISPER_REPO)
        assert f"pulling {WHISPER_REPO}: " in log and "Trying to resume" in log
        sample = speech["beckett"]
        result = server.client().audio.transcriptions.create(model="hub-whisper", file=sample.path)
        assert word_error_rate(sample.text, result.text) < 0.3
        described = server.client().models.retrieve("hub-whisper").model_dump()
        assert described["backend"] == "faster-whisper"  # detected from the files
        assert described["state"] == "loaded"
        metrics = httpx.get(f"{server.base_url}/metrics").text
        assert 'bragi_requests_total{model="hub-whisper"' in metrics
    assert hub_stub.seen("GET", contains="model.bin")
