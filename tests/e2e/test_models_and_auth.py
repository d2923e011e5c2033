"""Model listing, health, and API keys against the real server."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import openai
import pytest

from livesupport import LiveServer

pytestmark = pytest.mark.slow


def test_list_and_retrieve_models(server: LiveServer) -> None:
    client = server.client()
    models = {model.id: model for model in client.models.list()}
    assert {"whisper-1", "whisper-tiny.en", "tts-1", "kokoro"} <= set(models)
    whisper = client.models.retrieve("whisper-1")
    assert whisper.id == "whisper-1" and whisper.object == "model"
    assert isinstance(whisper.created, int)
    extra = whisper.model_dump()
    assert extra["kind"] == "stt" and extra["backend"] == "faster-whisper"
    assert models["tts-1"].model_dump()["kind"] == "tts"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_health_routes_are_open(server: LiveServer) -> None:
    assert httpx.get(f"{server.base_url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.base_url}/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def _cli(server: LiveServer, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAGI_")}
    env["BRAGI_DATA_DIR"] = str(server.data_dir)
    result = subprocess.run(
        [sys.executable, "-m", "bragi", "keys", *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return result.stdout


def test_auth_missing_wrong_and_revoked_keys(server: LiveServer) -> None:
    no_key = httpx.get(f"{server.base_url}/v1/models")
    assert no_key.status_code == 401
    assert no_key.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        server.client(api_key="sk-bragi-wrong-wrong-wrong-wrong").models.list()

    created = _cli(server, "create", "ci-client").splitlines()
    key, key_id = created[0], created[1].split()[2]
    assert key.startswith("sk-bragi-")
    assert [m.id for m in server.client(api_key=key).models.list()]
    assert key_id in _cli(server, "list") and key not in _cli(server, "list")

    _cli(server, "revoke", key_id)
    with pytest.raises(openai.AuthenticationError):
        server.client(api_key=key).models.list()
    server.assert_healthy()


def test_first_boot_key_printed_once_and_only_hash_stored(server: LiveServer) -> None:
    assert server.api_key.startswith("sk-bragi-")
    assert server.log().count(server.api_key) == 1
    database = (server.data_dir / "keys.db").read_bytes()
    assert server.api_key.encode() not in database
