"""Bragi's real app on a real uvicorn server in a background thread, with fake engines.

:func:`serve_app` builds the manager from ``Settings`` with an injected clock, turns
auth on with a key store in the data dir (an admin key from ``bootstrap()`` and a user
key), and serves ``create_app(...)`` on 127.0.0.1 at a free port until the ``with``
block ends. Tests then talk to it over HTTP, through the official ``openai`` client
(:meth:`AppServer.client`) or httpx (:meth:`AppServer.http`).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import uvicorn
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from bragi.api import create_app
from bragi.auth import KeyStore
from bragi.backends.registry import BackendRegistry
from bragi.cli.serve import EXIT_WITHIN
from bragi.config import ModelConfig, Settings
from bragi.models.configure import build_manager
from bragi.models.manager import ModelManager
from fakes import FakeBackend, FakeClock, wait_until

__all__ = ["AppServer", "Metrics", "fake_settings", "serve_app"]

_START_TIMEOUT = 20.0
_STOP_TIMEOUT = EXIT_WITHIN  # what `bragi serve` promises; slower fails the test


def fake_settings(data_dir: Path, models: dict[str, ModelConfig], **fields: Any) -> Settings:
    """Settings for a test server: CPU, auth on, everything on disk under ``data_dir``."""
    values: dict[str, Any] = {"device": "cpu", "auth": "enabled", "allow_downloads": False}
    return Settings(data_dir=data_dir, models=models, **(values | fields))


class Metrics:
    """A ``/metrics`` scrape, parsed with prometheus_client's own parser."""

    def __init__(self, text: str):
        self.families = {family.name: family for family in text_string_to_metric_families(text)}

    def value(self, sample_name: str, **labels: str) -> float:
        """The value of the sample named ``sample_name`` whose labels include ``labels``;
        0 when there is none (a counter never incremented)."""
        total = 0.0
        for family in self.families.values():
            for sample in family.samples:
                if sample.name == sample_name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total

    def has(self, sample_name: str) -> bool:
        return any(s.name == sample_name for f in self.families.values() for s in f.samples)


@dataclass
class AppServer:
    base_url: str  # http://127.0.0.1:PORT
    admin_key: str
    user_key: str
    app: FastAPI
    manager: ModelManager
    settings: Settings
    clock: FakeClock
    uvicorn_server: uvicorn.Server
    _closing: ExitStack = field(default_factory=ExitStack)

    def client(self, api_key: str | None = None, **options: Any) -> openai.OpenAI:
        """The official client, no retries (a 429 or 503 must reach the test)."""
        client = openai.OpenAI(
            base_url=f"{self.base_url}/v1",
            api_key=api_key or self.user_key,
            max_retries=0,
            timeout=options.pop("timeout", 30.0),
            **options,
        )
        self._closing.callback(client.close)
        return client

    def http(self, api_key: str | None = None, *, auth: bool = True) -> httpx.Client:
        """httpx on the server root, with the user key (or ``api_key``) unless ``auth=False``."""
        headers = {"Authorization": f"Bearer {api_key or self.user_key}"} if auth else {}
        client = httpx.Client(base_url=self.base_url, headers=headers, timeout=30.0)
        self._closing.callback(client.close)
        return client

    def metrics(self) -> Metrics:
        response = httpx.get(f"{self.base_url}/metrics", timeout=10)
        assert response.status_code == 200, response.text
        return Metrics(response.text)

    def open_connections(self) -> int:
        """HTTP connections the server holds now (drops when it has seen a client leave)."""
        return len(self.uvicorn_server.server_state.connections)

    def assert_healthy(self) -> None:
        response = httpx.get(f"{self.base_url}/health", timeout=10)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_app(
    settings: Settings,
    backends: Iterable[FakeBackend],
    *,
    clock: FakeClock | None = None,
) -> Iterator[AppServer]:
    """Serve ``create_app(settings, ...)`` with ``backends`` until the block ends."""
    backends = list(backends)
    registry = BackendRegistry(backends)
    clock = clock or FakeClock()
    manager = build_manager(settings, registry, clock=clock)
    keystore = KeyStore(settings.data_dir / "keys.db")
    admin = keystore.bootstrap()
    assert admin is not None, "a fresh key store makes its first admin key"
    user = keystore.create("tests", "user")
    app = create_app(settings, registry=registry, manager=manager, keystore=keystore)

    sock = _listening_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced in the test's thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    live = AppServer(
        f"http://127.0.0.1:{port}", admin.key, user.key, app, manager, settings, clock, server
    )
    try:
        wait_until(
            lambda: server.started or bool(failure) or not thread.is_alive(),
            _START_TIMEOUT,
            "the server to start",
        )
        if failure or not server.started:
            raise RuntimeError(f"the test server did not start: {failure!r}")
        with live._closing:
            yield live
    finally:
        for backend in backends:
            backend.release()  # no worker thread may stay blocked on a gate
        server.should_exit = True
        thread.join(_STOP_TIMEOUT)
        sock.close()
        keystore.close()
        assert not thread.is_alive(), "the test server did not stop"
        if failure:
            raise RuntimeError("the test server failed") from failure[0]
