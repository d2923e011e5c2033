"""HTTP metrics: every request counted by route template, model and status (the
counters themselves are :class:`bragi.metrics.Metrics`, shared by every protocol)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bragi.metrics import Metrics
from bragi.models.manager import ModelManager

__all__ = ["Metrics", "MetricsMiddleware", "label_model"]


def label_model(request: Request, manager: ModelManager, alias: str) -> None:
    """Label this request's metrics with ``alias``: a configured model's name, else
    ``unknown``, so that names made up by clients never become series of their own."""
    request.state.model = alias if alias in manager else "unknown"


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
