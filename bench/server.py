"""Running ``bragi serve`` as a subprocess: free port, temp data dir, starter set (or a
given config), auth on."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BragiServer",
    "free_port",
    "get_status",
    "models_config",
    "resident_mb",
    "starter_set",
    "with_runner",
]

KEY_PATTERN = re.compile(r"sk-bragi-[A-Za-z0-9_-]{20,}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get_status(port: int, path: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of ``GET path`` on 127.0.0.1:port, None when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


def starter_set() -> dict[str, dict[str, str]]:
    """The starter set as config entries: alias -> {"model": catalog name}."""
    from bragi.models.starter import starter_models

    return {alias: {"model": config.model} for alias, config in starter_models().items()}


def models_config(models: dict[str, dict[str, str]]) -> str:
    """A server config with these ``models:`` (JSON is YAML)."""
    return json.dumps({"models": models}, indent=2) + "\n"


def with_runner(config: str | None, runner: str) -> str:
    """``config`` (one of :func:`models_config`'s; None: the starter set) with ``runner``
    set on every model, and nothing else changed."""
    models = json.loads(config)["models"] if config else starter_set()
    return models_config({alias: entry | {"runner": runner} for alias, entry in models.items()})


def resident_mb(pid: int) -> float:
    """VmRSS of a process, in MB (10^6 bytes)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class BragiServer:
    """One ``python -m bragi serve`` process with its own data dir and port."""

    data_dir: Path
    models_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    config: str | None = None  # YAML; None: no config, the starter set
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def config_path(self) -> Path:
        return self.data_dir / ("config.yaml" if self.config else "no-config.yaml")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BRAGI_", "HF_"))}
        return (
            env
            | {
                "BRAGI_DATA_DIR": str(self.data_dir),
                "BRAGI_MODEL_CACHE_DIR": str(self.models_dir),
                "BRAGI_PORT": str(self.port),
                "BRAGI_HOST": "127.0.0.1",
                "BRAGI_DEVICE": "cpu",
                "BRAGI_AUTH": "enabled",
                "HF_HUB_OFFLINE": "1",
                "BRAGI_CONFIG": str(self.config_path),  # never /etc/bragi
            }
            | self.extra_env
        )

    def start(self) -> None:
        """Spawn the process (no waiting); ``started_at`` is taken just before the spawn."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config or "# starter set\n")
        self.port = free_port()
        env = self.environment()
        with self.log_path.open("ab") as log:
            self.started_at = time.perf_counter()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bragi", "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait_for(self, path: str, timeout: float = 120.0, poll: float = 0.01) -> float:
        """Poll ``GET path`` until it answers 200; returns the seconds since the spawn."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"bragi serve exited with {self.process.returncode}:\n{self.log()[-3000:]}"
                )
            if get_status(self.port, path, timeout=1.0) == 200:
                return time.perf_counter() - self.started_at
            time.sleep(poll)
        raise RuntimeError(f"bragi serve: {path} not answering after {timeout} s:\n{self.log()}")

    def api_key(self) -> str:
        match = KEY_PATTERN.search(self.log())
        if match is None:
            raise RuntimeError("bragi serve printed no first-boot API key:\n" + self.log()[-3000:])
        return match.group(0)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
