"""Chaos on the disk, with the real app over HTTP on a small tmpfs: the disk filling
during a voice upload and during a pull, and the data dir turning read-only while the
server runs. Each test asserts what the client gets (an OpenAI error with its own
status and code, never a 500), what is left on the disk (nothing half-written), and
that the server goes on serving, and recovers once there is room again.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from appserver import AppServer, fake_settings, serve_app
from bragi.auth import KeyStore
from bragi.config import ModelConfig
from disks import SmallDisk, small_disk
from fakes import FakeCloningTtsBackend, FakeSttBackend, make_model_dir, sine, wav_bytes, wav_of
from hubstub import HubStub
from livesupport import free_port

MiB = 1024 * 1024
BIG_REPO = "bragi-tests/fills-the-disk"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "disk", 8 * MiB) as mounted:
        yield mounted


class FillingHub(HubStub):
    """A hub stub that runs ``on_download(path)`` as a file's content is asked for."""

    on_download: Callable[[str], None] = staticmethod(lambda path: None)

    def _next_fault(self, repo_id: str, path: str) -> tuple[str, int] | None:
        self.on_download(path)
        return super()._next_fault(repo_id, path)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FillingHub]:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.json").write_text("{}\n")
    (repo / "weights.bin").write_bytes(os.urandom(2 * MiB))
    stub = FillingHub()
    stub.add_repo(BIG_REPO, repo)
    stub.start()
    monkeypatch.setenv("HF_ENDPOINT", stub.url)
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    yield stub
    stub.stop()


@pytest.fixture
def server(tmp_path: Path, disk: SmallDisk, hub: FillingHub) -> Iterator[AppServer]:
    """Data dir and model store on the small disk; the engines' model dirs elsewhere."""
    models = {
        "stt": ModelConfig(model=str(make_model_dir(tmp_path / "models", "fake-stt"))),
        "clone": ModelConfig(model=str(make_model_dir(tmp_path / "models", "fake-clone"))),
    }
    settings = fake_settings(
        disk.path / "data", models, model_cache_dir=disk.path / "store", allow_downloads=True
    )
    with serve_app(settings, [FakeSttBackend(), FakeCloningTtsBackend()]) as live:
        yield live


def voice_upload(http: httpx.Client, name: str) -> httpx.Response:
    recording = wav_of(sine(3.0, 24_000).samples, 24_000)
    files = {"audio_sample": ("ada.wav", recording, "audio/wav")}
    return http.post("/v1/audio/voices", data={"name": name}, files=files)


def leftovers(root: Path) -> list[str]:
    """Half-written things under ``root``: staging dirs, partial downloads."""
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.name.startswith((".tmp-", ".trash-")) or path.name.endswith(".incomplete")
    )


def assert_serves(server: AppServer) -> None:
    with server.http() as http:
        heard = http.post(
            "/v1/audio/transcriptions",
            data={"model": "stt"},
            files={"file": ("a.wav", wav_bytes())},
        )
        assert heard.status_code == 200 and heard.json()["text"] == "word0 word1 word2"


def test_a_voice_upload_onto_a_full_disk_is_a_507_and_leaves_nothing(
    server: AppServer, disk: SmallDisk
) -> None:
    """Regression (found by this test): the OSError escaped as a 500, which also made
    uvicorn drop the client's kept-alive connection."""
    voices = disk.path / "data" / "voices"
    disk.fill()
    with server.http() as http:
        refused = voice_upload(http, "ada")
        assert refused.status_code == 507, refused.text
        error = refused.json()["error"]
        assert error["code"] == "disk_full" and "No space left" in error["message"]
        assert http.get("/v1/audio/voices").status_code == 200  # the same connection
    assert leftovers(disk.path) == []
    assert not voices.exists() or not [p for p in voices.iterdir() if p.is_dir()]
    assert_serves(server)

    disk.empty()
    with server.http() as http:
        created = voice_upload(http, "ada")
        assert created.status_code == 200, created.text
    stored = voices / created.json()["id"]
    assert stat.S_IMODE(voices.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in stored.iterdir()} == {0o600}


def test_a_pull_that_fills_the_disk_ends_in_disk_full_and_leaves_no_partial_file(
    server: AppServer, disk: SmallDisk, hub: FillingHub
) -> None:
    """The disk has room when the pull starts (its free-space check passes); another
    writer takes it all as the big file is downloaded."""
    hub.on_download = lambda path: disk.fill() if path == "weights.bin" else None
    admin = server.http(server.admin_key)
    with admin.stream("POST", "/admin/pull", json={"model": BIG_REPO}) as response:
        assert response.status_code == 200
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert events[-1]["status"] == "error", events
    assert events[-1]["error"]["code"] == "disk_full"
    assert leftovers(disk.path) == []  # the partial download went, so the disk is not kept full
    assert_serves(server)

    hub.on_download = lambda path: None
    disk.empty()
    with admin.stream("POST", "/admin/pull", json={"model": BIG_REPO}) as response:
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert events[-1]["status"] == "success", events


def test_a_data_dir_turned_read_only_refuses_writes_and_still_serves(
    server: AppServer, disk: SmallDisk
) -> None:
    with server.http() as http:
        kept = voice_upload(http, "kept").json()
    with disk.read_only():
        with server.http() as http:
            refused = voice_upload(http, "new")
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "storage_unavailable"
            undeleted = http.delete(f"/v1/audio/voices/{kept['id']}")
            assert undeleted.status_code == 503
            listed = http.get("/v1/audio/voices").json()["data"]
            assert [v["name"] for v in listed if v["type"] == "audio_sample"] == ["kept"]
            spoken = http.post(
                "/v1/audio/speech",
                json={
                    "model": "clone",
                    "voice": "kept",
                    "input": "Still here.",
                    "response_format": "wav",
                },
            )
            assert spoken.status_code == 200  # what is stored is still read and used
        assert_serves(server)
        assert leftovers(disk.path) == []
    with server.http() as http:
        assert http.delete(f"/v1/audio/voices/{kept['id']}").status_code == 200


def test_a_data_dir_read_only_from_the_start_stops_bragi_serve_with_one_line(
    tmp_path: Path,
) -> None:
    """Nothing can be served safely without a key store it can open: one line, exit 2."""
    with small_disk(tmp_path / "disk", MiB) as disk:
        data = disk.path / "data"
        KeyStore(data / "keys.db").close()
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("BRAGI_")
        } | {"BRAGI_DATA_DIR": str(data), "BRAGI_PORT": str(free_port()), "BRAGI_MODELS": "{}"}
        with disk.read_only():
            done = subprocess.run(
                [sys.executable, "-m", "bragi", "serve"],
                env=environment,
                capture_output=True,
                text=True,
                timeout=120,
            )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("bragi: Cannot open the key store")
    assert "Read-only file system" in done.stderr and "Traceback" not in done.stderr
