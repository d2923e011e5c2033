"""Interleaved repetitions and the statistics every figure uses."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["interleave", "median", "paired_ratios", "timed"]


def timed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """(wall seconds, result) of one call."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def interleave(
    sides: Mapping[str, Callable[[], float]], reps: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Run each side once per round, in the given order (A B A B ...), ``warmup`` rounds
    first and not kept. Each callable measures itself and returns its number."""
    for _ in range(warmup):
        for run in sides.values():
            run()
    kept: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(reps):
        for name, run in sides.items():
            kept[name].append(run())
    return kept


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def paired_ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Round by round: each round's two numbers were taken next to each other."""
    return [a / b for a, b in zip(numerators, denominators, strict=True)]
