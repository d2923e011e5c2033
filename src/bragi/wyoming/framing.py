"""Wyoming framing: how one event travels over a byte stream.

An event is a JSON header line ending in ``\\n`` (``type``; optional ``data``,
``data_length``, ``payload_length``; a ``version`` that readers ignore), then
``data_length`` bytes of JSON merged over the header's ``data``, then
``payload_length`` bytes of payload (raw PCM for audio). Readers must take ``data``
inline as well as in its own block, and a missing ``data`` as ``{}``.

Every size is bounded before anything is read into memory, so a client cannot make the
server buffer more than :class:`FrameLimits` allows; a malformed header is a
:class:`~bragi.errors.ProtocolError` and an oversized one a
:class:`~bragi.errors.PayloadTooLargeError`, both of which end the connection with an
``error`` event.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from bragi.errors import PayloadTooLargeError, ProtocolError

__all__ = ["PROTOCOL_VERSION", "Event", "FrameLimits", "encode_event", "read_event"]

#: The ``version`` written in each header: the protocol revision Bragi speaks (the
#: ``wyoming`` package release that defined the events it answers).
PROTOCOL_VERSION = "1.10.2"
_MAX_TYPE_CHARS = 100


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class FrameLimits:
    """The most one event may carry, in bytes."""

    #: The header line (the reader's buffer limit as well).
    header: int = 64 * 1024
    #: The JSON data block (a ``synthesize`` text, an ``info``).
    data: int = 1024 * 1024
    #: The payload (one audio chunk; Home Assistant sends 320 bytes).
    payload: int = 8 * 1024 * 1024


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"Event header field {key!r} must be a non-negative integer.")
    if value > limit:
        raise PayloadTooLargeError(
            f"Event {header.get('type')!r} declares {key} {value}, over the limit of {limit} bytes."
        )
    return value


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"The event {what} is not JSON: {raw[:80]!r}") from None
    except RecursionError:  # nested deeper than the parser goes: no header is
        raise ProtocolError(f"The event {what} is nested too deeply to read.") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"The event {what} must be a JSON object.")
    return value


async def read_event(
    reader: asyncio.StreamReader, limits: FrameLimits, idle: float | None = None
) -> Event | None:
    """The next event; None when the stream ends, between events or inside one (a client
    that leaves mid-event has nothing left to answer).

    Waiting for the header longer than ``idle`` seconds raises TimeoutError with nothing
    consumed (the caller may wait again); an event whose data or payload stalls that long
    is a ProtocolError.
    """
    try:
        line = await asyncio.wait_for(reader.readuntil(b"\n"), idle)
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        raise PayloadTooLargeError(
            f"An event header line is longer than {limits.header} bytes."
        ) from None
    if len(line) > limits.header:
        raise PayloadTooLargeError(f"An event header line is longer than {limits.header} bytes.")
    header = _json_object(line, "header")
    event_type = header.get("type")
    if not isinstance(event_type, str) or not 0 < len(event_type) <= _MAX_TYPE_CHARS:
        raise ProtocolError("The event header has no 'type' string.")
    data = header.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise ProtocolError(f"Event {event_type!r}: 'data' must be a JSON object.")
    data_length = _length(header, "data_length", limits.data)
    payload_length = _length(header, "payload_length", limits.payload)
    try:
        if data_length:
            block = await asyncio.wait_for(reader.readexactly(data_length), idle)
            data = {**data, **_json_object(block, "data")}
        payload = (
            await asyncio.wait_for(reader.readexactly(payload_length), idle)
            if payload_length
            else b""
        )
    except asyncio.IncompleteReadError:
        return None
    except TimeoutError:
        raise ProtocolError(
            f"Event {event_type!r}: its data or payload stopped arriving for {idle:g} s."
        ) from None
    return Event(event_type, data, payload)


def encode_event(event: Event) -> bytes:
    """The event's bytes on the wire, written the way the 1.x writers do (data in its own
    block, left out when empty)."""
    header: dict[str, Any] = {"type": event.type, "version": PROTOCOL_VERSION}
    data = json.dumps(event.data, ensure_ascii=False).encode() if event.data else b""
    if data:
        header["data_length"] = len(data)
    if event.payload:
        header["payload_length"] = len(event.payload)
    return json.dumps(header).encode() + b"\n" + data + event.payload
