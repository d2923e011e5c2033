"""How much the fuzz tests run: each file's own count of examples (sized so that all of
them take about a minute on two cores), times ``BRAGI_FUZZ_SCALE`` (default 1) for a
longer run by hand, e.g. ``BRAGI_FUZZ_SCALE=20 pytest tests/fuzz``."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["examples", "fuzz_settings"]


def examples(default: int) -> int:
    return max(1, round(default * float(os.environ.get("BRAGI_FUZZ_SCALE", "1"))))


def fuzz_settings(default: int) -> settings:
    """Seeded (the same inputs every run), no example database, no time limit per
    example (the machine may be busy), ``examples(default)`` of them."""
    return settings(
        max_examples=examples(default),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
