"""Running ``bragi serve`` as a real subprocess for end-to-end tests."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai

from bragi.cli.serve import EXIT_WITHIN

KEY_PATTERN = re.compile(r"sk-bragi-[A-Za-z0-9_-]{20,}")
#: The ten fields of a verbose_json segment, as OpenAI sends them.
SEGMENT_FIELDS = frozenset(
    {
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
    }
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    base_url: str  # http://127.0.0.1:PORT
    api_key: str
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path
    #: Clients handed out, closed when the server stops (none is left to the collector
    #: with its connections open: ResourceWarning is an error in the suite).
    clients: list[openai.OpenAI | httpx.Client] = field(default_factory=list, repr=False)

    def client(self, api_key: str | None = None, **options: object) -> openai.OpenAI:
        client = openai.OpenAI(
            base_url=f"{self.base_url}/v1",
            api_key=api_key or self.api_key,
            max_retries=0,
            **options,  # type: ignore[arg-type]
        )
        self.clients.append(client)
        return client

    def http(self) -> httpx.Client:
        client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=120,
        )
        self.clients.append(client)
        return client

    def close_clients(self) -> None:
        while self.clients:
            self.clients.pop().close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_healthy(self) -> None:
        assert self.process.poll() is None, "server process died:\n" + self.log()[-3000:]
        assert httpx.get(f"{self.base_url}/health", timeout=10).status_code == 200


def _wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float, path: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bragi serve exited {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"bragi serve not ready after {timeout} s:\n{log.read_text()}")


@contextmanager
def start_server(
    data_dir: Path,
    models_dir: Path,
    *,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    ready: str = "/health/ready",
) -> Iterator[LiveServer]:
    """``bragi serve`` until the block ends, once ``ready`` answers 200. Stopping it takes
    SIGTERM; a server that takes longer than its own bound (``EXIT_WITHIN``) to exit is
    killed, and fails the test."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("BRAGI_", "HF_"))
    }
    environment |= {
        "BRAGI_DATA_DIR": str(data_dir),
        "BRAGI_MODEL_CACHE_DIR": str(models_dir),
        "BRAGI_PORT": str(port),
        "BRAGI_HOST": "127.0.0.1",
        "BRAGI_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    } | (env or {})
    command = [sys.executable, "-m", "bragi", "serve"]
    if config is not None:
        command += ["--config", str(config)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log_path, timeout, ready)
        match = KEY_PATTERN.search(log_path.read_text())
        live = LiveServer(url, match.group(0) if match else "", process, log_path, data_dir)
        try:
            yield live
        finally:
            live.close_clients()
    except BaseException:
        stop_server(process)
        raise
    took = stop_server(process)
    assert took is not None, (
        f"bragi serve took more than {EXIT_WITHIN} s to stop:\n{log_path.read_text()[-3000:]}"
    )


def stop_server(process: subprocess.Popen[bytes], signal: int | None = None) -> float | None:
    """Signal ``process`` (SIGTERM by default) and wait for it to exit; returns the seconds
    it took, or None if it did not exit within ``EXIT_WITHIN`` (it is killed then)."""
    started = time.monotonic()
    if process.poll() is None:
        if signal is None:
            process.terminate()
        else:
            process.send_signal(signal)
    try:
        process.wait(timeout=EXIT_WITHIN)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None
    return time.monotonic() - started
