"""The machine and the software a run measured: printed above the table, kept in the JSON."""

from __future__ import annotations

import os
import platform
import socket
from importlib import metadata
from typing import Any

__all__ = ["cpu_model", "load_average", "machine_info", "usable_cpus"]

_PACKAGES = (
    "bragi",
    "faster-whisper",
    "ctranslate2",
    "piper-tts",
    "kokoro-onnx",
    "onnxruntime",
    "av",
    "openai",
)


def usable_cpus() -> int:
    """Cores this process may run on: what the server uses for its engine threads too."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "cores": usable_cpus(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in _PACKAGES},
    }
