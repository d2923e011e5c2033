"""How a Wyoming request ended, for the metrics and for the client."""

from __future__ import annotations

import asyncio

from bragi.errors import BragiError

__all__ = ["internal_error", "status_of"]


def status_of(exc: BaseException | None) -> str:
    """The status an HTTP request that ended this way would have had (499: the client
    left first), for ``bragi_requests_total``."""
    if exc is None:
        return "200"
    if isinstance(exc, BragiError):
        return str(exc.status_code)
    if isinstance(exc, ConnectionError | asyncio.CancelledError):
        return "499"
    return "500"


def internal_error() -> BragiError:
    """What the client is told when something failed that Bragi did not foresee (the
    server log has the traceback)."""
    return BragiError("Internal error; see the server log.", code="internal_error")
