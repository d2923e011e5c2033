"""Bragi's benchmarks: the server against the engines it serves, side by side, in one run.

``python -m bench`` runs the figures of ``../shared/docs/performance.md`` (P1-P8) and
prints one markdown table; every speed figure is a ratio of the server to the engine
library called directly, measured interleaved in the same run. See docs/benchmarks.md.
"""
