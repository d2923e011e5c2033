"""Server lifecycle over HTTP: back-pressure, failed loads, disconnects, metrics, admin.

Requests are held in flight by the fakes' gates (no sleeping); every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from appserver import AppServer, Metrics, fake_settings, serve_app
from bragi.config import ModelConfig
from fakes import (
    SECONDS_PER_SENTENCE,
    FailingBackend,
    FakeBackend,
    FakeSttBackend,
    FakeSttEngine,
    FakeTtsBackend,
    SlowLoadingBackend,
    make_model_dir,
    wait_until,
    wav_bytes,
)

TRANSCRIPTIONS = "/v1/audio/transcriptions"
SPEECH = "/v1/audio/speech"


@contextmanager
def server_with(
    tmp_path: Path, backends: list[FakeBackend], **configs: ModelConfig | dict[str, Any]
) -> Iterator[AppServer]:
    """A server whose models are ``alias=ModelConfig`` or ``alias={"backend": name, ...}``
    (a model directory for that fake backend is made)."""
    models = {}
    for alias, config in configs.items():
        if isinstance(config, dict):
            backend = config.pop("backend")
            config = ModelConfig(model=str(make_model_dir(tmp_path, backend, alias)), **config)
        models[alias] = config
    with serve_app(fake_settings(tmp_path / "data", models), backends) as live:
        yield live


def transcribe(client: openai.OpenAI, model: str, seconds: float = 1.0) -> str:
    return client.audio.transcriptions.create(model=model, file=("a.wav", wav_bytes(seconds))).text


# --- back-pressure --------------------------------------------------------------


def test_requests_beyond_concurrency_and_queue_get_429_and_the_rest_succeed(
    tmp_path: Path,
) -> None:
    gate = threading.Event()
    stt = FakeSttBackend(gate=gate)
    limits = {"backend": "fake-stt", "max_concurrency": 1, "max_queue": 1}
    with server_with(tmp_path, [stt], busy=limits) as server, ThreadPoolExecutor(5) as pool:
        client = server.client()
        futures = [pool.submit(transcribe, client, "busy") for _ in range(5)]
        wait_until(lambda: sum(f.done() for f in futures) >= 3, what="three refusals")
        refused = [f for f in futures if f.done()]
        in_flight = [f for f in futures if not f.done()]
        assert (len(refused), len(in_flight)) == (3, 2)

        for future in refused:
            error = future.exception()
            assert isinstance(error, openai.RateLimitError), error
            assert error.status_code == 429
            assert error.type == "rate_limit_error"
            assert set(error.response.json()["error"]) == {"message", "type", "param", "code"}
            retry_after = error.response.headers["retry-after"]
            assert retry_after.isdigit() and int(retry_after) >= 1

        # One request runs (held at the gate), one waits in the queue.
        busy = server.manager.get("busy")
        assert (busy.running, busy.waiting) == (1, 1)
        metrics = server.metrics()
        assert metrics.value("bragi_queue_depth", model="busy") == 1
        assert metrics.value("bragi_requests_running", model="busy") == 1
        server.assert_healthy()

        gate.set()
        assert [f.result(timeout=30) for f in in_flight] == ["word0 word1 word2"] * 2
        assert transcribe(client, "busy") == "word0 word1 word2"
        server.assert_healthy()
    assert len(stt.calls) == 3, "refused requests never reached the engine"


# --- loading ---------------------------------------------------------------------


def test_a_model_that_fails_to_load_answers_503_while_the_others_serve(tmp_path: Path) -> None:
    broken = FailingBackend("weights file is truncated")
    with server_with(
        tmp_path,
        [broken, FakeSttBackend()],
        broken={"backend": "fake-broken"},
        stt={"backend": "fake-stt"},
    ) as server:
        client = server.client()
        for _ in range(2):  # the failed load, then the failed state
            with pytest.raises(openai.InternalServerError) as caught:
                transcribe(client, "broken")
            error = caught.value
            assert error.status_code == 503
            assert "weights file is truncated" in error.message
            assert error.code == "model_unavailable"
        assert broken.loads == 1, "a failed model is not reloaded on every request"

        described = client.models.retrieve("broken").model_dump()
        assert described["state"] == "failed"
        assert "weights file is truncated" in described["error"]
        assert transcribe(client, "stt") == "word0 word1 word2"
        assert client.models.retrieve("stt").model_dump()["state"] == "loaded"
        server.assert_healthy()
        # One broken model does not take the server out of service; it is reported.
        with server.http(auth=False) as http:
            readiness = http.get("/health/ready")
        assert readiness.status_code == 200
        assert readiness.json()["status"] == "degraded"
        assert readiness.json()["failed"] == {"broken": "load failed"}  # no details: it is open


def test_ten_concurrent_first_requests_load_the_model_once(tmp_path: Path) -> None:
    slow = SlowLoadingBackend()
    config = {"backend": "fake-slow", "max_concurrency": 10}
    with server_with(tmp_path, [slow], slow=config) as server, ThreadPoolExecutor(10) as pool:
        client = server.client()
        futures = [pool.submit(transcribe, client, "slow") for _ in range(10)]
        assert slow.load_started.wait(10)
        model = server.manager.get("slow")
        wait_until(lambda: model.running == 10, what="all ten requests to wait for the load")
        assert client.models.retrieve("slow").model_dump()["state"] == "loading"

        slow.load_gate.set()
        assert [f.result(timeout=30) for f in futures] == ["word0 word1"] * 10
        assert slow.loads == 1
        assert len(slow.engines) == 1
        assert client.models.retrieve("slow").model_dump()["state"] == "loaded"


# --- a client that leaves stops its work ------------------------------------------


@pytest.mark.parametrize("keep_alive", [300, 0])
def test_a_client_leaving_an_sse_transcription_stops_the_engine(
    tmp_path: Path, keep_alive: float
) -> None:
    gate = threading.Event()
    stt = FakeSttBackend(segments=50, gate=gate, gate_from=2)
    model_config = {"backend": "fake-stt", "keep_alive": keep_alive}
    with server_with(tmp_path, [stt], stt=model_config) as server:
        deltas = []
        with (
            server.http() as http,
            http.stream(
                "POST",
                TRANSCRIPTIONS,
                data={"model": "stt", "stream": "true"},
                files={"file": ("a.wav", wav_bytes(), "audio/wav")},
            ) as response,
        ):
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    deltas.append(json.loads(line.removeprefix("data: "))["delta"])
                if len(deltas) == 2:
                    break  # leave while the engine waits before segment 2
        wait_until(lambda: server.open_connections() == 0, what="the server to see the client go")
        gate.set()

        (call,) = stt.calls
        assert call.done.wait(10)
        assert deltas == ["word0", " word1"]
        assert call.closed.is_set(), "the engine's segment generator was closed"
        assert not call.finished
        assert call.produced < 5, f"{call.produced} of 50 segments decoded after the client left"
        model = server.manager.get("stt")
        wait_until(lambda: model.in_use == 0, what="the lease to be released")
        (engine,) = stt.engines
        if keep_alive == 0:  # unloaded after the request, even one cut short: engine closed
            wait_until(lambda: model.state.value == "available", what="the unload")
            assert isinstance(engine, FakeSttEngine) and engine.closed
        else:
            assert model.state.value == "loaded"
        assert transcribe(server.client(), "stt") == " ".join(f"word{i}" for i in range(50))


def test_a_client_leaving_a_speech_stream_stops_synthesis(tmp_path: Path) -> None:
    gate = threading.Event()
    tts = FakeTtsBackend(gate=gate, gate_at=2)
    text = " ".join(f"Sentence number {n}." for n in range(20))
    with server_with(tmp_path, [tts], tts={"backend": "fake-tts"}) as server:
        with server.client().audio.speech.with_streaming_response.create(
            model="tts", voice="af_alloy", input=text, response_format="pcm"
        ) as response:
            audio = response.iter_bytes()
            assert next(audio)
            wait_until(lambda: ("waiting", 2) in tts.events, what="the engine to reach the gate")
        wait_until(lambda: server.open_connections() == 0, what="the server to see the client go")
        gate.set()

        wait_until(lambda: any(e[0] == "closed" for e in tts.events), what="synthesis to stop")
        synthesized = [i for name, i in tts.events if name == "synthesized"]
        assert len(synthesized) < 5, f"{len(synthesized)} of 20 sentences after the client left"
        model = server.manager.get("tts")
        wait_until(lambda: model.in_use == 0, what="the lease to be released")
        server.assert_healthy()


def test_a_client_leaving_a_speech_sse_stream_stops_synthesis(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same through server-sent events, where the audio stream sits inside the event
    stream: the sentence in flight ends before the engine's generator is closed."""
    gate = threading.Event()
    tts = FakeTtsBackend(gate=gate, gate_at=2)
    body = {
        "model": "tts",
        "voice": "af_alloy",
        "input": " ".join(f"Sentence number {n}." for n in range(20)),
        "stream_format": "sse",
    }
    with server_with(tmp_path, [tts], tts={"backend": "fake-tts"}) as server:
        with server.http().stream("POST", SPEECH, json=body) as response:
            assert response.status_code == 200
            events = response.iter_lines()
            assert next(events).startswith("data: ")
            wait_until(lambda: ("waiting", 2) in tts.events, what="the engine to reach the gate")
        wait_until(lambda: server.open_connections() == 0, what="the server to see the client go")
        gate.set()
        wait_until(lambda: any(e[0] == "closed" for e in tts.events), what="synthesis to stop")
        model = server.manager.get("tts")
        wait_until(lambda: model.in_use == 0, what="the lease to be released")
        server.assert_healthy()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# --- metrics -------------------------------------------------------------------------


def test_metrics_count_what_was_sent(tmp_path: Path) -> None:
    with server_with(
        tmp_path,
        [FakeSttBackend(), FakeTtsBackend()],
        stt={"backend": "fake-stt"},
        tts={"backend": "fake-tts"},
    ) as server:
        client = server.client()
        before = server.metrics()
        assert before.value("bragi_requests_total", route=TRANSCRIPTIONS) == 0
        assert before.value("bragi_models_loaded") == 0

        transcribe(client, "stt", seconds=1.5)
        transcribe(client, "stt", seconds=0.5)
        for made_up in ("nope", "no-such-0", "no-such-1"):  # any key can send any name
            with pytest.raises(openai.NotFoundError):
                transcribe(client, made_up)
        with pytest.raises(openai.NotFoundError):
            client.audio.speech.create(model="nope", voice="alloy", input="One.")
        client.audio.speech.create(model="tts", voice="alloy", input="One. Two.")
        with pytest.raises(openai.BadRequestError):
            client.audio.speech.create(model="tts", voice="alloy", input="One.", speed=9)

        def counted(m: Metrics) -> dict[str, float]:
            requests = "bragi_requests_total"
            return {
                "transcriptions 200": m.value(
                    requests, route=TRANSCRIPTIONS, model="stt", status="200"
                ),
                "transcriptions 404": m.value(
                    requests, route=TRANSCRIPTIONS, model="unknown", status="404"
                ),
                "speech 404": m.value(requests, route=SPEECH, model="unknown", status="404"),
                "speech 200": m.value(requests, route=SPEECH, model="tts", status="200"),
                "speech 400": m.value(requests, route=SPEECH, status="400"),
                "latency observations": m.value(
                    "bragi_request_duration_seconds_count", route=TRANSCRIPTIONS, model="stt"
                ),
                "seconds in": m.value("bragi_audio_seconds_total", model="stt", direction="in"),
                "seconds out": m.value("bragi_audio_seconds_total", model="tts", direction="out"),
                "models loaded": m.value("bragi_models_loaded"),
            }

        expected = {
            "transcriptions 200": 2,
            "transcriptions 404": 3,
            "speech 404": 1,
            "speech 200": 1,
            "speech 400": 1,
            "latency observations": 2,
            "seconds in": 1.5 + 0.5,
            "seconds out": 2 * SECONDS_PER_SENTENCE,
            "models loaded": 2,
        }
        # Each counter moves as its response ends, a moment after the client has it all.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: counted(server.metrics()) == expected, what="the counts")
        assert counted(server.metrics()) == expected
        after = server.metrics()
        labelled = {
            sample.labels.get("model")
            for family in after.families.values()
            for sample in family.samples
        }
        assert labelled == {None, "", "stt", "tts", "unknown"}, "made-up names add no series"
        for alias in ("stt", "tts"):
            assert after.has("bragi_queue_depth")
            assert after.value("bragi_queue_depth", model=alias) == 0
            assert after.value("bragi_model_state", model=alias, state="loaded") == 1


# --- admin API -------------------------------------------------------------------------


def test_admin_api_needs_an_admin_key_and_loads_and_unloads(tmp_path: Path) -> None:
    with server_with(
        tmp_path,
        [FakeSttBackend(), FakeTtsBackend()],
        stt={"backend": "fake-stt"},
        tts={"backend": "fake-tts"},
    ) as server:
        user, admin = server.http(), server.http(server.admin_key)
        client = server.client()

        for method, path in [("GET", "/admin/models"), ("POST", "/admin/models/stt/load")]:
            denied = user.request(method, path)
            assert denied.status_code == 403
            assert denied.json()["error"]["code"] == "permission_denied"
        assert client.models.retrieve("stt").model_dump()["state"] == "available"

        listing = admin.get("/admin/models")
        assert listing.status_code == 200
        assert {m["id"]: m["state"] for m in listing.json()["data"]} == {
            "stt": "available",
            "tts": "available",
        }

        loaded = admin.post("/admin/models/stt/load")
        assert loaded.status_code == 200, loaded.text
        assert loaded.json()["state"] == "loaded"
        assert client.models.retrieve("stt").model_dump()["state"] == "loaded"
        assert server.metrics().value("bragi_models_loaded") == 1
        assert admin.get("/admin/models").json()["data"][0]["id"] == "stt"  # loaded first

        unloaded = admin.post("/admin/models/stt/unload")
        assert unloaded.status_code == 200
        assert (unloaded.json()["unloaded"], unloaded.json()["state"]) == (True, "available")
        assert client.models.retrieve("stt").model_dump()["state"] == "available"
        assert server.metrics().value("bragi_models_loaded") == 0

        missing = admin.post("/admin/models/nope/load")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "model_not_found"
