"""Auth on every ``/v1`` route (found from the app, so a new route is covered too);
health and metrics stay open; the admin API wants an admin key."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from appserver import AppServer, fake_settings, serve_app
from bragi.api.app import announce_first_key
from bragi.auth import KeyStore
from bragi.cli.serve import check_exposure
from bragi.config import ModelConfig, load_settings
from bragi.errors import ConfigError
from fakes import FakeSttBackend, FakeTtsBackend, make_model_dir
from livesupport import KEY_PATTERN

#: The routes the OpenAI Audio API has here; every one must be found below.
EXPECTED_V1 = {
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model_id}"),
    ("POST", "/v1/audio/transcriptions"),
    ("POST", "/v1/audio/translations"),
    ("POST", "/v1/audio/speech"),
    ("GET", "/v1/audio/voices"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("auth")
    models = {
        "stt": ModelConfig(model=str(make_model_dir(root, "fake-stt"))),
        "tts": ModelConfig(model=str(make_model_dir(root, "fake-tts"))),
    }
    with serve_app(
        fake_settings(root / "data", models), [FakeSttBackend(), FakeTtsBackend()]
    ) as live:
        yield live


def routes(server: AppServer, prefix: str) -> list[tuple[str, str]]:
    """(method, path template) of the app's routes under ``prefix``, from its OpenAPI schema."""
    paths = server.app.openapi()["paths"]
    return sorted(
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith(prefix)
        for method in operations
    )


def concrete(path: str) -> str:
    """A real URL for a path template: every path parameter names the model ``stt``."""
    return re.sub(r"\{[^}]+\}", "stt", path)


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, f"{response.request.url}: {response.status_code}"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "invalid_request_error"


def test_the_app_has_the_openai_routes(server: AppServer) -> None:
    assert set(routes(server, "/v1/")) >= EXPECTED_V1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk-bragi-not-a-real-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
    ids=["no-key", "wrong-key", "not-bearer", "bearer-without-key"],
)
def test_every_v1_route_needs_a_key(server: AppServer, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as http:
        for method, path in routes(server, "/v1/"):
            assert_401(http.request(method, concrete(path)))


def test_the_openai_client_without_a_valid_key_gets_authentication_error(
    server: AppServer,
) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        server.client(api_key="sk-bragi-wrong-key-4f1c9").models.list()
    assert caught.value.code == "invalid_api_key"
    assert "sk-bragi" not in caught.value.message, "the key sent is not echoed"


def test_a_revoked_key_stops_working(server: AppServer) -> None:
    keystore = server.app.state.keystore
    created = keystore.create("short-lived", "user")
    client = server.client(api_key=created.key)
    assert [m.id for m in client.models.list()] == ["stt", "tts"]
    keystore.revoke(created.record.id)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_user_and_admin_keys_both_use_v1(server: AppServer) -> None:
    for key in (server.user_key, server.admin_key):
        assert server.client(api_key=key).models.retrieve("tts").id == "tts"


@pytest.mark.parametrize("path", ["/health", "/health/ready", "/metrics"])
def test_health_and_metrics_are_open(server: AppServer, path: str) -> None:
    response = httpx.get(f"{server.base_url}{path}", timeout=10)
    assert response.status_code == 200, response.text


def test_admin_routes_need_a_key_and_an_admin_role(server: AppServer) -> None:
    admin_routes = routes(server, "/admin/")
    assert ("GET", "/admin/models") in admin_routes
    anonymous, user = server.http(auth=False), server.http()
    for method, path in admin_routes:
        assert_401(anonymous.request(method, concrete(path)))
        denied = user.request(method, concrete(path), json={"model": "stt"})
        assert denied.status_code == 403, f"{method} {path}: {denied.status_code}"
        assert denied.json()["error"]["code"] == "permission_denied"


def test_the_key_is_checked_before_the_body_is_parsed(server: AppServer) -> None:
    with server.http(auth=False) as http:
        response = http.post(
            "/v1/audio/speech", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    with server.http() as http:
        malformed = http.post(
            "/v1/audio/speech", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert malformed.status_code == 400
    assert "could not parse the JSON" in malformed.json()["error"]["message"]


def test_the_first_admin_key_goes_to_stderr_and_never_through_logging(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with KeyStore(tmp_path / "keys.db") as keystore, caplog.at_level(logging.DEBUG):
        announce_first_key(keystore)
        announce_first_key(keystore)  # a second boot shows nothing
    (key,) = KEY_PATTERN.findall(capfd.readouterr().err)
    assert keystore_verifies(tmp_path / "keys.db", key)
    assert "created an admin API key" in caplog.text
    assert all(key not in record.getMessage() for record in caplog.records)


def keystore_verifies(path: Path, key: str) -> bool:
    with KeyStore(path) as keystore:
        return keystore.verify(key) is not None


@pytest.mark.parametrize(
    ("env", "refused"),
    [
        ({"BRAGI_AUTH": "disabled", "BRAGI_HOST": "0.0.0.0"}, True),
        ({"BRAGI_AUTH": "disabled", "BRAGI_HOST": "::"}, True),
        ({"BRAGI_AUTH": "disabled", "BRAGI_HOST": "::1"}, False),
        ({"BRAGI_AUTH": "disabled", "BRAGI_HOST": "localhost"}, False),
        ({"BRAGI_AUTH": "disabled", "BRAGI_HOST": "0.0.0.0", "BRAGI_INSECURE_NO_AUTH": "1"}, False),
        ({"BRAGI_HOST": "0.0.0.0"}, False),
    ],
)
def test_no_keys_on_the_network_needs_saying_so(
    env: dict[str, str], refused: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(None, data_dir=tmp_path)
    if not refused:
        check_exposure(settings)
        return
    with pytest.raises(ConfigError, match="--insecure-no-auth"):
        check_exposure(settings)


def test_serve_refuses_to_start_without_keys_on_the_network(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BRAGI_")}
    environment |= {
        "BRAGI_AUTH": "disabled",
        "BRAGI_HOST": "0.0.0.0",
        "BRAGI_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bragi", "serve"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("bragi: auth is disabled and host is 0.0.0.0")
