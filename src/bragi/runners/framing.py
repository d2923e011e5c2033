"""Length-prefixed frames over a Unix socket: a JSON header and an optional raw payload.

A frame is ``>IQ`` (header length, payload length), the UTF-8 JSON header, then the
payload bytes (float32 samples, little-endian). Only JSON and raw samples cross the
boundary, never pickles, so a worker from an older or newer environment can only
send data, not code. Reads and writes take an absolute ``deadline``
(:func:`time.monotonic`); past it, :class:`TimeoutError`. Bytes that are not a frame
raise :class:`MalformedFrame`; a payload's buffer grows as its bytes arrive, so a
size that only the prefix claims costs nothing.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_PAYLOAD_BYTES",
    "Channel",
    "ChannelClosed",
    "Frame",
    "MalformedFrame",
]

_PREFIX = struct.Struct(">IQ")
MAX_HEADER_BYTES = 16 * 1024 * 1024
#: Two hours of 16 kHz float32 audio is 460 MB; anything near this bound is a bug.
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024 * 1024
_CHUNK = 1024 * 1024


class ChannelClosed(ConnectionError):
    """The other end went away (the process exited, or closed its socket)."""


class MalformedFrame(ChannelClosed, ValueError):
    """The bytes read are not a frame (sizes past the bounds, a header that is not a JSON
    object): the two ends are out of step and cannot get back in, so the channel is as
    good as closed."""


@dataclass(frozen=True, slots=True)
class Frame:
    header: dict[str, Any]
    payload: bytes | bytearray = field(default=b"", repr=False)

    @property
    def op(self) -> str:
        return str(self.header.get("op", ""))


class Channel:
    """One end of a framed connection. Not thread-safe: callers serialise their use."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def fileno(self) -> int:
        return self._sock.fileno()

    def send(
        self,
        header: dict[str, Any],
        payload: bytes | bytearray | memoryview = b"",
        *,
        deadline: float | None = None,
    ) -> None:
        encoded = json.dumps(header, separators=(",", ":")).encode()
        size = memoryview(payload).nbytes
        self._settimeout(deadline)
        try:
            self._sock.sendall(_PREFIX.pack(len(encoded), size) + encoded)
            if size:
                self._sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ChannelClosed(str(exc)) from exc

    def receive(self, *, deadline: float | None = None) -> Frame:
        header_size, payload_size = _PREFIX.unpack(self._read(_PREFIX.size, deadline))
        if header_size > MAX_HEADER_BYTES or payload_size > MAX_PAYLOAD_BYTES:
            raise MalformedFrame(f"malformed frame ({header_size} + {payload_size} bytes)")
        raw = self._read(header_size, deadline)
        try:
            header = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deep
            raise MalformedFrame(f"malformed frame: the header is not JSON ({exc})") from None
        if not isinstance(header, dict):
            raise MalformedFrame("malformed frame: the header is not an object")
        payload = self._read(payload_size, deadline) if payload_size else b""
        return Frame(header, payload)

    def close(self) -> None:
        self._sock.close()

    def _settimeout(self, deadline: float | None) -> None:
        if deadline is None:
            self._sock.settimeout(None)
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        self._sock.settimeout(left)

    def _read(self, size: int, deadline: float | None) -> bytearray:
        buffer = bytearray(min(size, _CHUNK))
        done = 0
        while done < size:
            if done == len(buffer):
                # Grown (doubling) as bytes arrive, never at once to a size only the
                # prefix claims: a lying 4 GiB would otherwise be allocated and zeroed.
                buffer.extend(bytes(min(len(buffer), size - len(buffer))))
            self._settimeout(deadline)
            try:
                # A temporary view: released at once, so the buffer may grow again.
                wanted = min(len(buffer) - done, _CHUNK)
                count = self._sock.recv_into(memoryview(buffer)[done:], wanted)
            except ConnectionResetError as exc:
                raise ChannelClosed(str(exc)) from exc
            if count == 0:
                raise ChannelClosed("end of stream")
            done += count
        return buffer
