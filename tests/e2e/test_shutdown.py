"""``bragi serve`` stops promptly on SIGTERM (Kubernetes, Docker) and on Ctrl-C (SIGINT),
with a slow download in flight and an engine running in a worker process: within its
own bound (``EXIT_WITHIN``, shorter than Kubernetes' grace period), leaving no worker
behind and no half-downloaded model counted as complete."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from bragi.cli.serve import EXIT_WITHIN
from bragi.models.store import HubSource, ModelStore
from fakes import wait_until
from hubstub import HubStub
from livesupport import start_server, stop_server
from torchenvs import child_pids

pytestmark = pytest.mark.slow

BIG_REPO = "bragi-tests/big-whisper"
#: The slow model's download would take this long (and the exit does not wait for it).
DOWNLOAD_SECONDS = 4 * EXIT_WITHIN


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_serve_stops_within_its_bound_during_a_download_and_with_a_worker(
    hub_stub: HubStub, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.json").write_text("{}\n")
    (repo / "model.bin").write_bytes(bytes(32 * 1024 * 1024))
    hub_stub.add_repo(BIG_REPO, repo)
    hub_stub.throttle(BIG_REPO, "model.bin", 32 * 1024 * 1024 // DOWNLOAD_SECONDS)
    config = tmp_path / "config.yaml"
    config.write_text(
        "models:\n"
        f"  big: {{model: {BIG_REPO}, backend: faster-whisper}}\n"
        "  tts-1: {model: 'piper:en_US-joe-medium', runner: worker, preload: true}\n"
    )
    env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub_stub.url}
    models = tmp_path / "models"
    with start_server(tmp_path / "data", models, config=config, env=env, ready="/health") as live:
        headers = {"Authorization": f"Bearer {live.api_key}"}

        def state(alias: str) -> str:
            response = httpx.get(f"{live.base_url}/admin/models", headers=headers, timeout=10)
            return {m["id"]: m["state"] for m in response.json()["data"]}[alias]

        wait_until(lambda: state("tts-1") == "loaded", 60, "the worker to load Piper")
        wait_until(lambda: hub_stub.content_gets("model.bin"), 30, "the download to start")
        assert state("big") == "downloading"
        workers = child_pids(live.process.pid)
        assert workers, "Piper runs in a worker process"

        took = stop_server(live.process, stop_signal)
        assert took is not None, f"still running {EXIT_WITHIN} s after {stop_signal.name}"
        wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), 10)
        assert "Traceback" not in live.log(), live.log()[-3000:]
    assert ModelStore(models, offline=True).local_path(HubSource(BIG_REPO)) is None
