"""Server-sent events as the openai client parses them: ``data: {json}`` and a blank line."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["SSE_HEADERS", "sse_event"]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(payload: dict[str, Any]) -> bytes:
    # No `id:` or `event:` lines: the openai client would dispatch empty events after them.
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
