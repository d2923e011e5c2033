"""The admin API's answers to bad names and failed pulls: a 400 or a 404, never a 500,
and a pull's NDJSON stream that always ends with a ``success`` or an ``error`` event."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appserver import AppServer, fake_settings, serve_app
from bragi.api import create_app
from bragi.backends.registry import BackendRegistry
from bragi.config import ModelConfig
from bragi.models.configure import build_manager
from fakes import FakeSttBackend, make_model_dir
from hubstub import HubStub


@pytest.fixture
def server(tmp_path: Path, hub_stub: HubStub) -> Iterator[AppServer]:
    models = {"stt": ModelConfig(model=str(make_model_dir(tmp_path, "fake-stt", "stt")))}
    with serve_app(fake_settings(tmp_path / "data", models), [FakeSttBackend()]) as live:
        yield live


def events_of(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines()]


def test_bad_names_are_a_400_or_a_404(server: AppServer) -> None:
    admin = server.http(server.admin_key)
    pull = admin.post("/admin/pull", json={"model": "not a model"})
    assert pull.status_code == 400, pull.text
    assert pull.json()["error"]["param"] == "model"
    assert "is not a catalog name" in pull.json()["error"]["message"]
    for path in ("/admin/models/nonsense", "/admin/models/not%20a%20model"):
        deleted = admin.delete(path)
        assert deleted.status_code == 404, deleted.text
    for action in ("load", "unload"):
        missing = admin.post(f"/admin/models/nonsense/{action}")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "model_not_found"


def test_a_pull_streams_its_progress_then_success_or_a_typed_error(
    server: AppServer, hub_stub: HubStub, tmp_path: Path
) -> None:
    folder = make_model_dir(tmp_path / "repos", "fake-stt", "plain")
    hub_stub.add_repo("bragi-tests/plain", folder)
    admin = server.http(server.admin_key)
    pulled = events_of(admin.post("/admin/pull", json={"model": "bragi-tests/plain"}))
    assert pulled[0]["status"] == "pulling"
    assert pulled[-1]["status"] == "success" and Path(pulled[-1]["path"]).is_dir()
    missing = events_of(admin.post("/admin/pull", json={"model": "bragi-tests/no-such-repo"}))
    assert missing[-1]["status"] == "error"
    assert missing[-1]["error"]["code"] == "model_repo_not_found"


def test_a_pull_cut_short_by_shutdown_ends_with_an_error_event(
    hub_stub: HubStub, tmp_path: Path
) -> None:
    folder = make_model_dir(tmp_path / "repos", "fake-stt", "big")
    (folder / "weights.bin").write_bytes(bytes(40 * 1024 * 1024))
    hub_stub.add_repo("bragi-tests/big", folder)
    hub_stub.throttle("bragi-tests/big", "weights.bin", 8 * 1024 * 1024)
    settings = fake_settings(tmp_path / "data", {}, auth="disabled")
    registry = BackendRegistry([FakeSttBackend()])
    manager = build_manager(settings, registry)
    app = create_app(settings, registry=registry, manager=manager)

    async def scenario() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bragi") as client:
            pull = asyncio.ensure_future(
                client.post("/admin/pull", json={"model": "bragi-tests/big"}, timeout=30)
            )
            for _ in range(2_000):
                if hub_stub.content_gets("weights.bin"):
                    break
                await asyncio.sleep(0.005)
            manager.downloads.abort()  # what stop() does first
            return await pull

    events = events_of(asyncio.run(scenario()))
    assert events[-1]["status"] == "error"
    assert events[-1]["error"]["code"] == "model_unavailable"
    assert "stopping" in events[-1]["error"]["message"]
