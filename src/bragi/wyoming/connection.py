"""One Wyoming client connection: read events, answer them, leave nothing behind.

Events are read one after another. Speech to text runs inline at ``audio-stop`` (the
client waits for the transcript anyway); streaming text to speech runs in a task of its
own, so ``synthesize-chunk`` events keep being read while sentences are spoken. Replies
never interleave: a new request waits for a stream that is finishing.

Anything wrong ends the connection with an ``error`` event (``text``, and Bragi's
error ``code``): a malformed or oversized event, a busy model (``rate_limit_exceeded``,
where HTTP says 429), an unknown voice. Unknown event types are ignored, as the protocol
asks. Whatever way the connection ends, leases are released and streams stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bragi.config import Settings
from bragi.errors import BragiError
from bragi.metrics import Metrics
from bragi.models.manager import ModelManager
from bragi.wyoming.catalog import Catalog
from bragi.wyoming.choose import Chooser
from bragi.wyoming.events import error_event
from bragi.wyoming.framing import Event, FrameLimits, encode_event, read_event
from bragi.wyoming.outcome import internal_error
from bragi.wyoming.stt import SpeechInput
from bragi.wyoming.tts import SpeechOutput

__all__ = ["Connection", "Services"]

log = logging.getLogger(__name__)

#: Longest a failed connection waits for its client to stop sending before it closes.
_LINGER_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Services:
    """What every connection shares: the server's own manager, voices, metrics."""

    settings: Settings
    manager: ModelManager
    catalog: Catalog
    chooser: Chooser
    metrics: Metrics
    limits: FrameLimits

    def record(self, route: str, model: str, status: str, started: float) -> None:
        """Count a request the way the HTTP middleware does."""
        self.metrics.requests.labels(route, model, status).inc()
        self.metrics.latency.labels(route, model).observe(time.perf_counter() - started)


class Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, services: Services
    ):
        self.reader = reader
        self.writer = writer
        self.services = services
        self.timeout = services.settings.wyoming.idle_timeout
        self.peer = writer.get_extra_info("peername")
        self._write_lock = asyncio.Lock()
        self._closing = False
        self.speech_in = SpeechInput(self)
        self.speech_out = SpeechOutput(self)
        self._handlers: dict[str, Callable[[Event], Awaitable[None]]] = {
            "describe": self._describe,
            "ping": self._ping,
            "transcribe": self.speech_in.on_transcribe,
            "audio-start": self.speech_in.on_audio_start,
            "audio-chunk": self.speech_in.on_audio_chunk,
            "audio-stop": self.speech_in.on_audio_stop,
            "synthesize": self.speech_out.on_synthesize,
            "synthesize-start": self.speech_out.on_synthesize_start,
            "synthesize-chunk": self.speech_out.on_synthesize_chunk,
            "synthesize-stop": self.speech_out.on_synthesize_stop,
        }

    async def serve(self) -> None:
        metrics = self.services.metrics
        metrics.wyoming_connections.inc()
        log.debug("Wyoming client %s connected", self.peer)
        stopping = False
        try:
            await self._read_events()
        except ConnectionError:
            pass  # the client left; nothing to tell it
        except asyncio.CancelledError:  # the server is shutting down
            stopping = True
            raise
        except Exception:  # a bug: this connection ends, the server keeps serving
            log.exception("Wyoming connection from %s failed", self.peer)
            await self.fail(internal_error())
        finally:
            try:
                await self.speech_out.close(stop=stopping)
                if self._closing:
                    await self._linger()
            finally:  # counted out and closed even if a step above fails
                self.writer.close()
                with contextlib.suppress(OSError):
                    await self.writer.wait_closed()
                metrics.wyoming_connections.dec()
                log.debug("Wyoming client %s disconnected", self.peer)

    async def _read_events(self) -> None:
        while not self._closing:
            try:
                event = await read_event(self.reader, self.services.limits, self.timeout)
            except TimeoutError:
                if self.speech_out.answering:
                    continue  # the client waits for audio Bragi is still sending
                await self.fail(
                    BragiError(
                        f"No event for {self.timeout:g} s (wyoming.idle_timeout); closing.",
                        code="idle_timeout",
                    )
                )
                return
            except BragiError as exc:  # malformed or oversized: the stream is out of step
                await self.fail(exc)
                return
            if event is None:
                return
            handler = self._handlers.get(event.type)
            if handler is None:
                log.debug("ignoring Wyoming event %r from %s", event.type, self.peer)
                continue
            try:
                await handler(event)
            except BragiError as exc:
                await self.fail(exc)
                return

    async def _describe(self, event: Event) -> None:
        snapshot = await self.services.catalog.current()
        await self.send(Event("info", snapshot.info))

    async def _ping(self, event: Event) -> None:
        text = event.data.get("text")
        await self.send(Event("pong", {"text": text} if isinstance(text, str) else {}))

    async def send(self, *events: Event) -> None:
        """Write events in order, whole; ConnectionResetError when the client is gone,
        stops reading for ``idle_timeout``, or the connection has failed."""
        if self._closing:
            raise ConnectionResetError("the Wyoming connection is closing")
        await self._write(events)

    async def _write(self, events: tuple[Event, ...]) -> None:
        async with self._write_lock:
            if self.writer.is_closing():
                raise ConnectionResetError("the Wyoming client left")
            self.writer.write(b"".join(encode_event(event) for event in events))
            try:
                await asyncio.wait_for(self.writer.drain(), self.timeout)
            except TimeoutError:
                raise ConnectionResetError("the Wyoming client stopped reading") from None

    async def fail(self, exc: BragiError) -> None:
        """Send ``error`` and end the connection: nothing more is written, and the client
        sees the end of the stream (HA 2026.2 ignores ``error`` and waits for that)."""
        if self._closing:
            return
        self._closing = True
        log.info("Wyoming request from %s failed: %s", self.peer, exc.message)
        with contextlib.suppress(OSError, RuntimeError):  # ENOTCONN is no ConnectionError
            await self._write((error_event(exc),))
            self.writer.write_eof()

    async def _linger(self) -> None:
        """Read and drop what the client still sends, briefly: closing a socket with
        unread data resets it, and the reset can overtake the ``error`` just sent. A
        client that reset first fails the read with any OSError (uvloop: ENOTCONN from
        the shutdown after ``error``)."""
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(_LINGER_SECONDS):
                while await self.reader.read(65536):
                    pass
