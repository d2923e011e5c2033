"""Refusing oversized uploads before they are held in memory.

A body announced larger than the limit gets 413 without being stored: it is read and
discarded (so the client, still sending, gets to read the answer instead of a reset
connection), up to a cap past which the connection is simply closed. A body that
grows past the limit without announcing its size fails as it crosses the limit.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bragi.api.errors import error_response
from bragi.errors import PayloadTooLargeError

__all__ = ["UploadLimitMiddleware", "limited_receive"]

_DRAIN_FACTOR = 8  # read and discard at most this many times the limit


def _too_large(limit: int, size: int | None) -> PayloadTooLargeError:
    seen = f" ({size} bytes)" if size is not None else ""
    return PayloadTooLargeError(
        f"Maximum content size limit ({limit}) exceeded{seen}. "
        "Send a smaller file or raise upload_limit_mb."
    )


class UploadLimitMiddleware:
    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._drain(receive, declared)
            await error_response(_too_large(self.limit, declared))(scope, receive, send)
            return
        limited = limited_receive(receive, self.limit, _too_large(self.limit, None))
        await self.app(scope, limited, send)

    async def _drain(self, receive: Receive, declared: int) -> None:
        if declared > self.limit * _DRAIN_FACTOR:
            return
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return


def limited_receive(receive: Receive, limit: int, error: PayloadTooLargeError) -> Receive:
    """``receive`` that raises ``error`` once the body has passed ``limit`` bytes."""
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise error
        return message

    return counting_receive


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
