"""The peers Bragi is compared with: wyoming-faster-whisper and wyoming-piper from PyPI,
each in a virtual environment of its own that the bench creates (never the test suite),
spoken to over the Wyoming protocol; and any OpenAI-compatible server (``--base-url``).

The Wyoming client here is the protocol itself, a few lines: each event is a JSON line
(``type``, ``data_length``, ``payload_length``), then its data (JSON) and payload bytes.
Audio goes to wyoming-faster-whisper as 16-bit PCM at 16 kHz, already decoded (Bragi is
sent the WAV file and decodes it itself); wyoming-piper answers with 16-bit PCM.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["PEERS", "PeerProcess", "PeerSpec", "pcm16", "peer_env", "wyoming_speak", "wyoming_stt"]

_CHUNK_BYTES = 32_000  # one second of 16 kHz 16-bit audio per audio-chunk event


@dataclass(frozen=True)
class PeerSpec:
    name: str
    requirement: str  # exactly what the bench installs
    module: str  # python -m <module>


PEERS = {
    "wyoming-faster-whisper": PeerSpec(
        "wyoming-faster-whisper", "wyoming-faster-whisper==3.8.1", "wyoming_faster_whisper"
    ),
    "wyoming-piper": PeerSpec("wyoming-piper", "wyoming-piper==2.5.2", "wyoming_piper"),
}


def peer_env(spec: PeerSpec, root: Path, log: Any = print) -> Path:
    """The peer's virtual environment under ``root`` (created and installed once; a
    stamp records the requirement); its python."""
    venv = root / spec.name
    python = venv / "bin" / "python"
    stamp = venv / ".bench-requirement"
    if stamp.is_file() and stamp.read_text().strip() == spec.requirement:
        return python
    log(f"installing {spec.requirement} into {venv} (once)")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", spec.requirement],
        check=True,
        timeout=1800,
    )
    stamp.write_text(spec.requirement + "\n")
    return python


@dataclass
class PeerProcess:
    """A peer server listening on 127.0.0.1:port, its log in ``log_path``."""

    command: list[str]
    log_path: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self, timeout: float = 300.0) -> None:
        self._log = self.log_path.open("wb")
        environment = dict(os.environ) | self.env
        self.process = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, env=environment
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[:3]} exited:\n{self.log()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.command[:3]} not listening after {timeout} s")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()


# --- the Wyoming protocol ------------------------------------------------------------


def _send(sock: socket.socket, kind: str, data: dict[str, Any], payload: bytes = b"") -> None:
    body = json.dumps(data).encode()
    header = {"type": kind, "data_length": len(body), "payload_length": len(payload)}
    sock.sendall(json.dumps(header).encode() + b"\n" + body + payload)


def _receive(stream: IO[bytes]) -> tuple[str, dict[str, Any], bytes]:
    line = stream.readline()
    if not line:
        raise RuntimeError("the Wyoming peer closed the connection")
    header = json.loads(line)
    data = dict(header.get("data") or {})
    if length := header.get("data_length"):
        data |= json.loads(stream.read(length))
    payload = stream.read(header["payload_length"]) if header.get("payload_length") else b""
    return str(header["type"]), data, payload


def pcm16(path: Path) -> bytes:
    """The recording as 16 kHz mono 16-bit PCM (what a Wyoming satellite sends)."""
    from bragi.audio import decode_audio

    samples = decode_audio(path.read_bytes(), 16_000).samples
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def wyoming_stt(port: int, pcm: bytes) -> tuple[float, str]:
    """(seconds from the first byte sent to the transcript, its text)."""
    fmt = {"rate": 16_000, "width": 2, "channels": 1}
    with socket.create_connection(("127.0.0.1", port)) as sock, sock.makefile("rb") as stream:
        started = time.perf_counter()
        _send(sock, "transcribe", {})
        _send(sock, "audio-start", fmt)
        for offset in range(0, len(pcm), _CHUNK_BYTES):
            _send(sock, "audio-chunk", fmt, pcm[offset : offset + _CHUNK_BYTES])
        _send(sock, "audio-stop", {})
        while True:
            kind, data, _payload = _receive(stream)
            if kind == "transcript":
                return time.perf_counter() - started, str(data.get("text", ""))
            if kind == "error":
                raise RuntimeError(f"Wyoming peer: {data}")


def wyoming_speak(port: int, text: str, voice: str) -> tuple[float, float, float]:
    """(seconds to the first audio chunk, seconds to the end, seconds of audio)."""
    with socket.create_connection(("127.0.0.1", port)) as sock, sock.makefile("rb") as stream:
        started = time.perf_counter()
        _send(sock, "synthesize", {"text": text, "voice": {"name": voice}})
        first, audio_bytes, rate, width = None, 0, 22_050, 2
        while True:
            kind, data, payload = _receive(stream)
            if kind == "audio-start":
                rate, width = int(data.get("rate", rate)), int(data.get("width", width))
            elif kind == "audio-chunk":
                if first is None and payload:
                    first = time.perf_counter() - started
                audio_bytes += len(payload)
            elif kind == "audio-stop":
                total = time.perf_counter() - started
                if first is None:
                    raise RuntimeError("the Wyoming peer sent no audio")
                return first, total, audio_bytes / width / rate
            elif kind == "error":
                raise RuntimeError(f"Wyoming peer: {data}")
