"""Per-key rate limits (``rate_limit_per_minute``): the bucket's arithmetic on an injected
clock, then the real app: a key past its allowance gets OpenAI's 429 with Retry-After
(before its upload is read, before a realtime session opens), other keys and the open
routes do not notice."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
import websockets.exceptions
from websockets.sync.client import connect as ws_connect

from appserver import AppServer, fake_settings, serve_app
from bragi.auth.ratelimit import RateLimiter
from bragi.config import ModelConfig
from bragi.errors import RateLimitError
from fakes import FakeClock, FakeSttBackend, make_model_dir, wav_bytes

PER_MINUTE = 3


def test_a_key_spends_a_minutes_allowance_then_earns_one_back_at_a_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(PER_MINUTE, clock=clock)
    for _ in range(PER_MINUTE):
        limiter.check("key_a")
    with pytest.raises(RateLimitError) as refused:
        limiter.check("key_a")
    assert refused.value.retry_after == 20  # one request per 60/3 s
    assert refused.value.status_code == 429
    limiter.check("key_b")  # another key has its own allowance
    clock.advance(19)
    with pytest.raises(RateLimitError) as again:
        limiter.check("key_a")
    assert again.value.retry_after == 1
    clock.advance(1)
    limiter.check("key_a")
    clock.advance(3600)  # an idle key saves up at most one minute's allowance
    for _ in range(PER_MINUTE):
        limiter.check("key_a")
    with pytest.raises(RateLimitError):
        limiter.check("key_a")


def test_no_limit_is_not_a_limit_of_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(0)


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("ratelimit")
    models = {"stt": ModelConfig(model=str(make_model_dir(root, "fake-stt")))}
    settings = fake_settings(root / "data", models, rate_limit_per_minute=PER_MINUTE)
    with serve_app(settings, [FakeSttBackend()]) as live:
        # The app's own limiter, on the test's clock, so that time can pass at once.
        assert isinstance(live.app.state.rate_limiter, RateLimiter)
        live.app.state.rate_limiter = RateLimiter(PER_MINUTE, clock=live.clock)
        yield live


def test_a_key_past_its_rate_gets_a_429_with_retry_after(server: AppServer) -> None:
    client = server.client()
    for _ in range(PER_MINUTE):
        client.models.list()
    with pytest.raises(openai.RateLimitError) as refused:
        client.models.list()
    response = refused.value.response
    assert response.headers["retry-after"] == "20"
    assert response.json()["error"] == {
        "message": response.json()["error"]["message"],
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert "3 requests per minute" in response.json()["error"]["message"]

    # Refused before the upload is read: a body that is not even a form gets the 429.
    with server.http() as http:
        upload = http.post("/v1/audio/transcriptions", content=b"not a form")
        assert upload.status_code == 429
        assert http.get("/health").status_code == 200  # open routes are not counted
        assert http.get("/metrics").status_code == 200

    admin = server.client(server.admin_key)  # another key: its own allowance
    assert admin.models.list().data

    server.clock.advance(20)
    text = client.audio.transcriptions.create(model="stt", file=("a.wav", wav_bytes(0.5)))
    assert text.text == "word0 word1 word2"


def test_an_unknown_key_is_a_401_not_a_429(server: AppServer) -> None:
    with server.http(api_key="sk-bragi-" + "x" * 43) as http:
        for _ in range(PER_MINUTE + 2):
            assert http.get("/v1/models").status_code == 401


def test_admin_routes_count_too(server: AppServer) -> None:
    with server.http(api_key=server.admin_key) as http:
        statuses = [http.get("/admin/models").status_code for _ in range(PER_MINUTE + 1)]
    assert statuses == [200] * PER_MINUTE + [429]


def test_realtime_sessions_count_against_the_key_and_an_ephemeral_keys_maker(
    server: AppServer,
) -> None:
    url = server.base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    headers = {"Authorization": f"Bearer {server.user_key}"}
    secret = server.client().realtime.client_secrets.create()  # spends one of three
    with ws_connect(url, additional_headers=headers) as session:  # two
        assert json.loads(session.recv(timeout=10))["type"] == "session.created"
    protocols = ["realtime", f"openai-insecure-api-key.{secret.value}"]
    with ws_connect(url, subprotocols=protocols) as browser:  # type: ignore[arg-type]
        assert json.loads(browser.recv(timeout=10))["type"] == "session.created"  # three
    for refused_with in ({"additional_headers": headers}, {"subprotocols": protocols}):
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            ws_connect(url, **refused_with)  # type: ignore[arg-type]
        response = refused.value.response
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "20"
        assert json.loads(response.body)["error"]["code"] == "rate_limit_exceeded"
    server.clock.advance(20)
    with ws_connect(url, additional_headers=headers) as session:
        assert json.loads(session.recv(timeout=10))["type"] == "session.created"
