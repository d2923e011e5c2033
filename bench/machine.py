"""The machine and the software a run measured: printed above the table, kept in the JSON."""

from __future__ import annotations

import os
import platform
import resource
import socket
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

__all__ = [
    "ENGINE_PACKAGES",
    "CpuShare",
    "cpu_model",
    "load_average",
    "machine_info",
    "usable_cpus",
]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

#: engine libraries whose versions a run records (and the table's header names)
ENGINE_PACKAGES = (
    "faster-whisper",
    "ctranslate2",
    "piper-tts",
    "kokoro-onnx",
    "onnxruntime",
    "moonshine-voice",
    "vosk",
    "sherpa-onnx",
    "onnx-asr",
)
_PACKAGES = ("bragi", *ENGINE_PACKAGES, "av", "openai")


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


def _machine_busy() -> float | None:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / _TICKS


def _ours() -> float:
    """CPU seconds of this process and of its children that have ended (the servers)."""
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class CpuShare:
    """How many cores other processes kept busy while the benchmark ran (noise gauge)."""

    busy: float | None
    ours: float
    wall: float

    @classmethod
    def start(cls) -> CpuShare:
        return cls(_machine_busy(), _ours(), time.monotonic())

    def others(self) -> float | None:
        """Average cores used by other processes since :meth:`start` (servers stopped)."""
        busy = _machine_busy()
        if busy is None or self.busy is None:
            return None
        wall = time.monotonic() - self.wall
        return max(busy - self.busy - (_ours() - self.ours), 0.0) / wall if wall > 0 else None
