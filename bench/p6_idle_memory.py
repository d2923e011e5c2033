"""P6: idle memory. VmRSS (``/proc/PID/status``) of ``bragi serve`` with the starter set
configured and no model loaded, read once ``/health/ready`` answers (median of P7's
restarts). A size: reported in MB (10^6 bytes) against the target, <= 150 MB.
"""

from __future__ import annotations

from bench.context import Context
from bench.measure import median
from bench.p7_startup import series
from bench.report import Figure, value_figure

__all__ = ["run"]


def run(ctx: Context) -> list[Figure]:
    rss = [s.rss_mb for s in series(ctx)]
    name = "idle memory, no model loaded (VmRSS)"
    return [value_figure("P6", name, "MB", median(rss), "<= 150 MB", {"rss_mb": rss})]
