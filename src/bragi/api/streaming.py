"""A streaming response that always lets go of what it holds (a lease, an engine stream).

A body generator's ``finally`` runs only if the generator started. Starlette does not
start it when the client is gone before the first byte and the ASGI server's ``send``
yields (uvicorn's httptools protocol happens not to; other servers and middleware do),
and then a lease held for the body would never be released: the model would never
unload and would end up answering 429. So the response itself closes its body and
runs ``on_close`` once it is over, however it ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from anyio import CancelScope
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = ["ClosingStreamingResponse"]


class ClosingStreamingResponse(StreamingResponse):
    """A :class:`StreamingResponse` that awaits ``on_close()`` when it ends, started or
    not (``on_close`` must be safe to call after the body's own cleanup)."""

    def __init__(self, content: Any, *, on_close: Callable[[], Awaitable[None]], **kwargs: Any):
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with CancelScope(shield=True):  # a client leaving cancels this scope
                # The body's own cleanup first, if it started and was left at a yield;
                # a body never started just closes.
                close_body = getattr(self.body_iterator, "aclose", None)
                if close_body is not None:
                    await close_body()
                await self._on_close()
