"""P7: start-up. ``bragi serve`` (starter set, no model preloaded) from spawn to ``/health``
answering 200, polled every 10 ms; median of 5 restarts (--quick: 3). Target <= 2 s.

The first start of the series boots a fresh data dir (creates the admin key) and is the
warm-up; the measured ones restart on that data dir, as a service does. The same starts
give P6's memory readings.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.context import Context
from bench.measure import median
from bench.report import Figure, value_figure
from bench.server import BragiServer, resident_mb

__all__ = ["STARTS", "Startup", "run", "series"]

STARTS = 5  # --quick: 3
SETTLE_S = 0.3  # after /health/ready, before reading VmRSS


@dataclass(frozen=True)
class Startup:
    health_s: float  # spawn -> /health answers
    ready_s: float  # spawn -> /health/ready answers (every model available, none loaded)
    rss_mb: float  # VmRSS once ready


def _start_once(data_dir: Path, models_dir: Path, env: dict[str, str]) -> Startup:
    server = BragiServer(data_dir, models_dir, dict(env))
    server.start()
    try:
        health = server.wait_for("/health")
        ready = server.wait_for("/health/ready")
        time.sleep(SETTLE_S)
        rss = resident_mb(server.pid)
        if "loaded " in server.log():
            raise RuntimeError("a model was loaded at start-up:\n" + server.log()[-2000:])
    finally:
        server.stop()
    return Startup(health, ready, rss)


def series(ctx: Context) -> list[Startup]:
    """Warm-up start plus :data:`STARTS` measured restarts (once per run; P6 reuses it)."""
    if ctx.startups is None:
        starts = 3 if ctx.options.quick else STARTS
        ctx.log(f"P6/P7 starting bragi serve {starts + 1} times")
        with tempfile.TemporaryDirectory(prefix="bragi-bench-start-") as tmp:
            data_dir = Path(tmp)
            # no model loaded: the starter set's preloading is P12's business
            env = {"BRAGI_PRELOAD_STARTER": "false"} | ctx.options.server_env
            _start_once(data_dir, ctx.models_dir, env)  # first boot: warm-up
            ctx.startups = [_start_once(data_dir, ctx.models_dir, env) for _ in range(starts)]
    return ctx.startups


def run(ctx: Context) -> list[Figure]:
    starts = series(ctx)
    health = [s.health_s for s in starts]
    ready = [s.ready_s for s in starts]
    note = f"/health/ready (starter set available) after {median(ready):.3f} s"
    samples = {"health": health, "ready": ready}
    name = "start-up, spawn to /health"
    return [value_figure("P7", name, "s", median(health), "<= 2 s", samples, note)]
