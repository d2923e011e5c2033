"""Prometheus metrics shared by every protocol (HTTP, Realtime, Wyoming): requests,
latency, queue depth, loaded models, audio seconds.

Each app has its own registry (no process-global state), so several apps (tests) can
live in one process.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bragi.models.manager import ModelManager
from bragi.models.served import ModelState

__all__ = ["Metrics"]

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
        # Wyoming requests are counted in `requests` and `latency` too, with the routes
        # `wyoming/transcribe` and `wyoming/synthesize` and the status an HTTP request with
        # the same outcome would have had (499: the client left).
        self.wyoming_connections = Gauge(
            "bragi_wyoming_connections", "Wyoming connections open now", registry=self.registry
        )
        # Live transcription (GET /v1/realtime); transcribed turns also count in audio_seconds.
        self.realtime_sessions = Gauge(
            "bragi_realtime_sessions", "Realtime sessions open now", registry=self.registry
        )
        self.realtime_sessions_opened = Counter(
            "bragi_realtime_sessions_opened", "Realtime sessions accepted", registry=self.registry
        )
        self.realtime_turns = Counter(
            "bragi_realtime_turns",
            "Realtime turns transcribed (completed) or failed",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.realtime_turn_latency = Histogram(
            "bragi_realtime_turn_latency_seconds",
            "Time from a turn's commit to its final text",
            ["model"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.realtime_partials = Counter(
            "bragi_realtime_partial_decodes",
            "Partial decodes (re-decodes or engine-stream feeds) while people spoke",
            ["model"],
            registry=self.registry,
        )
        self.realtime_audio_seconds = Counter(
            "bragi_realtime_audio_seconds",
            "Seconds of audio received over realtime sessions",
            registry=self.registry,
        )
        self.realtime_buffered_seconds = Gauge(
            "bragi_realtime_buffered_seconds",
            "Seconds of audio realtime sessions hold now",
            registry=self.registry,
        )
        self.registry.register(_ManagerCollector(manager))
