"""Prometheus metrics: requests, latency, queue depth, loaded models, audio seconds.

Each app has its own registry (no process-global state), so several apps (tests) can
live in one process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bragi.models.manager import ModelManager
from bragi.models.served import ModelState

__all__ = ["Metrics", "MetricsMiddleware", "label_model"]

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _ManagerCollector(Collector):
    """Gauges read from the model manager at scrape time."""

    def __init__(self, manager: ModelManager):
        self._manager = manager

    def collect(self) -> Iterator[Metric]:
        queue = GaugeMetricFamily(
            "bragi_queue_depth", "Requests waiting per model", labels=["model"]
        )
        running = GaugeMetricFamily(
            "bragi_requests_running", "Requests running per model", labels=["model"]
        )
        state = GaugeMetricFamily(
            "bragi_model_state", "1 for the state each model is in", labels=["model", "state"]
        )
        loaded = 0
        for model in self._manager.models():
            queue.add_metric([model.alias], model.waiting)
            running.add_metric([model.alias], model.running)
            for candidate in ModelState:
                state.add_metric([model.alias, candidate.value], float(model.state is candidate))
            loaded += model.engine is not None
        yield queue
        yield running
        yield state
        yield GaugeMetricFamily("bragi_models_loaded", "Models loaded now", value=loaded)


def label_model(request: Request, manager: ModelManager, alias: str) -> None:
    """Label this request's metrics with ``alias``: a configured model's name, else
    ``unknown``, so that names made up by clients never become series of their own."""
    request.state.model = alias if alias in manager else "unknown"


class Metrics:
    def __init__(self, manager: ModelManager):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bragi_requests", "HTTP requests", ["route", "model", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "bragi_request_duration_seconds",
            "Time from request to the last byte of the response",
            ["route", "model"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "bragi_audio_seconds",
            "Seconds of audio transcribed (in) or synthesized (out)",
            ["model", "direction"],
            registry=self.registry,
        )
        self.registry.register(_ManagerCollector(manager))


class MetricsMiddleware:
    """Counts every request by route template, model (set by the route) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            model = scope.get("state", {}).get("model", "")
            self.metrics.requests.labels(template, model, str(status)).inc()
            self.metrics.latency.labels(template, model).observe(time.perf_counter() - started)
