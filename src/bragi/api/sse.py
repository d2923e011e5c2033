"""Server-sent events as the openai client parses them: ``data: {json}`` and a blank line.

A stream that fails after it began (a worker killed mid-stream) ends with an error
event, ``{"type": "error", "error": {message, type, param, code}}``, which the openai
client raises as an ``APIError`` with the message, rather than with a cut connection,
which it can only report as a lost connection.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from anyio import CancelScope

from bragi.errors import BragiError

__all__ = ["SSE_HEADERS", "ending_in_an_error_event", "sse_event"]

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(payload: dict[str, Any]) -> bytes:
    # No `id:` or `event:` lines: the openai client would dispatch empty events after them.
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def ending_in_an_error_event(events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``events``; if they fail, one last event saying why (OpenAI's error body)."""
    try:
        async for event in events:
            yield event
    except BragiError as exc:
        log.warning("a stream failed after it began: %s", exc.message)
        yield sse_event({"type": "error"} | exc.to_body())
    except Exception:
        log.exception("a stream failed after it began")
        failure = BragiError("The server had an error while processing your request.")
        yield sse_event({"type": "error"} | failure.to_body())
    finally:
        if isinstance(events, AsyncGenerator):
            # A client that left cancels this scope; the events' own cleanup (closing the
            # engine's stream, releasing the model) must still run to its end.
            with CancelScope(shield=True):
                await events.aclose()
