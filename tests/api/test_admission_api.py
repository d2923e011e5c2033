"""What a request costs before it is let in, and what it leaves behind when it goes.

A transcription is admitted as soon as its ``model`` field is read: refused (429, or
404 for an unknown model) while its upload is still on the wire, so a full queue costs
no memory. And a response whose body never starts still gives its lease back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import ClientDisconnect

from appserver import fake_settings, serve_app
from bragi.api import create_app
from bragi.backends.registry import BackendRegistry
from bragi.config import ModelConfig
from bragi.models.configure import build_manager
from fakes import FakeSttBackend, FakeTtsBackend, make_model_dir, wait_until, wav_bytes

BOUNDARY = "bragi-test-boundary"
UPLOAD_BYTES = 20 * 1024 * 1024


def _start_of_upload(host: str, port: int, key: str, model: str) -> bytes:
    """A transcription request whose fields and first 64 KiB of a 20 MiB file are sent,
    and no more; returns what the server answers meanwhile."""
    fields = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    closing = f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (
        "POST /v1/audio/transcriptions HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Authorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(fields) + UPLOAD_BYTES + len(closing)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head + fields + bytes(64 * 1024))
        return sock.recv(65_536)  # a timeout here: the server waits for the whole upload


@pytest.mark.parametrize(
    ("model", "status"), [("busy", b"429 Too Many Requests"), ("nope", b"404 Not Found")]
)
def test_a_request_is_refused_before_its_upload_is_read(
    tmp_path: Path, model: str, status: bytes
) -> None:
    gate = threading.Event()
    stt = FakeSttBackend(gate=gate)
    config = ModelConfig(
        model=str(make_model_dir(tmp_path, "fake-stt", "busy")), max_concurrency=1, max_queue=0
    )
    with (
        serve_app(fake_settings(tmp_path / "data", {"busy": config}), [stt]) as server,
        ThreadPoolExecutor(1) as pool,
    ):
        client = server.client()
        running = pool.submit(
            client.audio.transcriptions.create, model="busy", file=("a.wav", wav_bytes(1.0))
        )
        wait_until(lambda: bool(stt.calls), what="the first request to hold the model")
        host, port = server.base_url.removeprefix("http://").split(":")
        reply = _start_of_upload(host, int(port), server.user_key, model)
        assert reply.startswith(b"HTTP/1.1 " + status), reply[:200]
        gate.set()
        assert running.result(timeout=30).text == "word0 word1 word2"
        assert (server.manager.get("busy").running, server.manager.get("busy").waiting) == (0, 0)


def test_a_response_whose_body_never_starts_still_releases_its_lease(tmp_path: Path) -> None:
    """The client is gone before the first byte, and the server's send yields: Starlette
    never starts the body, so only the response's own cleanup can give the lease back."""
    tts = FakeTtsBackend()
    models = {"tts": ModelConfig(model=str(make_model_dir(tmp_path, "fake-tts", "tts")))}
    settings = fake_settings(tmp_path / "data", models, auth="disabled", keep_alive=-1)
    registry = BackendRegistry([tts])
    manager = build_manager(settings, registry)
    app = create_app(settings, registry=registry, manager=manager)
    body = json.dumps({"model": "tts", "voice": "alloy", "input": "One. Two. Three."}).encode()
    sent: list[str] = []

    async def scenario() -> None:
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])
            await asyncio.sleep(0)  # an ASGI server whose send yields to the loop

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/audio/speech",
            "raw_path": b"/v1/audio/speech",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json")],
            "client": ("127.0.0.1", 50_000),
            "server": ("127.0.0.1", 8000),
        }
        await app(scope, receive, send)  # type: ignore[arg-type]
        model = manager.get("tts")
        assert (model.in_use, model.running) == (0, 0), "the lease was released"
        await manager.stop()

    asyncio.run(scenario())
    assert "http.response.body" not in sent, "the body never started"
    assert tts.events == [("synthesized", 0), ("closed", 1)], "the synthesis was closed"


def test_an_sse_stream_cut_at_a_send_ends_the_sentence_in_flight_first(tmp_path: Path) -> None:
    """The client goes while a send is pending and the engine works on the next sentence:
    closing the event stream closes the audio stream inside it first, which waits for
    that sentence, and only then the engine's generator (never while it runs)."""
    gate = threading.Event()
    tts = FakeTtsBackend(gate=gate, gate_at=2)
    models = {"tts": ModelConfig(model=str(make_model_dir(tmp_path, "fake-tts", "tts")))}
    settings = fake_settings(tmp_path / "data", models, auth="disabled", keep_alive=-1)
    registry = BackendRegistry([tts])
    manager = build_manager(settings, registry)
    app = create_app(settings, registry=registry, manager=manager)
    text = " ".join(f"Sentence number {n}." for n in range(6))
    body = json.dumps({"model": "tts", "voice": "alloy", "input": text, "stream_format": "sse"})

    async def scenario() -> None:
        messages = [{"type": "http.request", "body": body.encode(), "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await asyncio.Event().wait()  # the client never says it left
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] != "http.response.body" or not message.get("body"):
                return
            for _ in range(60):  # the engine reaches the next sentence meanwhile
                if ("waiting", 2) in tts.events:
                    asyncio.get_running_loop().call_later(0.1, gate.set)
                    raise OSError("the client is gone")
                await asyncio.sleep(0.005)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/audio/speech",
            "raw_path": b"/v1/audio/speech",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json")],
            "client": ("127.0.0.1", 50_000),
            "server": ("127.0.0.1", 8000),
        }
        with contextlib.suppress(ClientDisconnect):
            await app(scope, receive, send)  # type: ignore[arg-type]
        model = manager.get("tts")
        assert (model.in_use, model.running) == (0, 0)
        await manager.stop()

    asyncio.run(scenario())
    assert ("synthesized", 2) in tts.events and tts.events[-1] == ("closed", 3)
