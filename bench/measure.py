"""Interleaved rounds over several process instances, and the statistics every figure uses."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "SETTLE",
    "CpuProbe",
    "Measured",
    "cpu_note",
    "interleave",
    "median",
    "paired_ratios",
    "spread_note",
    "timed",
]

#: seconds before each call (``interleave(settle=...)``) where short calls of two processes
#: alternate: another process's ONNX Runtime threads spin on after its run, and a call 20-30
#: ms slower follows; 80 ms after, a call is as fast as after a long pause (2 cores)
SETTLE = 0.15

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

#: What one call of a side gives: wall seconds (or the figure's own number, e.g. a
#: throughput), optionally with the CPU seconds it used.
Measured = float | tuple[float, float | None]


def timed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """(wall seconds, result) of one call."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (any of its threads may have spawned them)."""
    children: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as listing:
                children.extend(int(child) for child in listing.read().split())
        except OSError:  # the thread ended meanwhile
            continue
    return children


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


class CpuProbe:
    """CPU seconds used so far by a local server process (user + system, all threads) and
    its live child processes (engine workers, ``runner: worker``), plus this process (the
    client side). Wall time is what the figures judge; CPU time is kept beside it because
    it hardly moves when other work shares the machine."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def _server(self) -> float:
        pids, total = [self.server_pid], 0.0
        while pids:
            pid = pids.pop()
            total += _cpu_seconds(pid)
            pids.extend(_children(pid))
        return total

    def __call__(self) -> float:
        return self._server() + time.process_time()


def interleave(
    sides: Mapping[str, Callable[[int], Measured]],
    reps: int,
    instances: int,
    warmup: bool = True,
    settle: float = 0.0,
) -> dict[str, list[float]]:
    """Rounds of one call per side, in the given order (A B A B ...).

    Round ``r`` runs on process instance ``r % instances`` of each side (each side's
    callable gets that index), so a per-process bias is sampled, not inherited. The
    warm-up calls every side once on every instance and is not kept. CPU seconds, when a
    side reports them, are kept as ``<side>_cpu``; ``instance`` records the rotation.
    ``settle``: seconds to wait before each kept call, off the clock, so that what the
    previous call's process still does (ONNX Runtime's threads spin on after a run) is
    over when the next one starts.
    """
    if warmup:
        for index in range(instances):
            for run in sides.values():
                run(index)
    kept: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(reps):
        index = round_ % instances
        for name, run in sides.items():
            time.sleep(settle)
            value = run(index)
            cpu = None
            if isinstance(value, tuple):
                value, cpu = value
            kept[name].append(value)
            if cpu is not None:
                kept.setdefault(f"{name}_cpu", []).append(cpu)
    kept["instance"] = [float(r % instances) for r in range(reps)]
    return kept


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def paired_ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Round by round: each round's two numbers were taken next to each other."""
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


def cpu_note(samples: dict[str, list[float]], server: str = "server", over: str = "direct") -> str:
    """``CPU-time ratio 1.02`` of ``server`` ÷ ``over`` (median of the per-round ratios),
    if CPU was measured."""
    numerators, denominators = samples.get(f"{server}_cpu"), samples.get(f"{over}_cpu")
    if not numerators or not denominators or len(numerators) != len(denominators):
        return ""
    ratios = [a / b for a, b in zip(numerators, denominators, strict=True) if b > 0]
    return f"CPU-time ratio {median(ratios):.3f}" if ratios else ""


def spread_note(samples: dict[str, list[float]], side: str) -> str:
    """How far apart the process instances of one side were (median per instance)."""
    instances = samples.get("instance")
    values = samples.get(side)
    if not instances or not values or len(set(instances)) < 2:
        return ""
    per_instance = [
        median([v for v, i in zip(values, instances, strict=True) if i == index])
        for index in sorted(set(instances))
    ]
    low, high = min(per_instance), max(per_instance)
    return f"{side} instances spread {100 * (high - low) / low:.0f} %" if low > 0 else ""
