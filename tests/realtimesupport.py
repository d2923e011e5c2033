"""Driving Bragi's Realtime WebSocket from tests with the official ``openai`` client.

:class:`EventPump` reads a connection's server events in a thread into a queue, so a
test sends (at real pace, or faster) while the events pile up, and then waits for the
ones it needs with a bounded wait: a server that never answers fails the test instead of
hanging it.
"""

from __future__ import annotations

import base64
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import openai

from bragi.audio import decode_audio
from speech import SpeechSample

__all__ = [
    "CLOSED",
    "EventPump",
    "Utterances",
    "connect",
    "pcm16",
    "send_audio",
    "two_utterances",
]

RATE = 24_000
#: Stands in the queue for the end of the connection (with the close reason, if any).
CLOSED = "closed"

Samples = npt.NDArray[np.float32]


def pcm16(samples: Samples) -> bytes:
    """Float samples as 16-bit little-endian PCM (what ``audio/pcm`` carries)."""
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


@dataclass(frozen=True)
class Utterances:
    """Speech, a second of silence, more speech, and silence the VAD needs to end it."""

    samples: Samples  # 24 kHz
    texts: tuple[str, str]
    speech: tuple[tuple[float, float], tuple[float, float]]  # where each one is, in seconds

    @property
    def pcm(self) -> bytes:
        return pcm16(self.samples)

    @property
    def text(self) -> str:
        return " ".join(self.texts)


def two_utterances(speech: dict[str, SpeechSample]) -> Utterances:
    """Two sentences of A Tale of Two Cities (a human reader) a second apart."""
    audio = decode_audio(speech["two_cities"].path.read_bytes(), RATE).samples
    first = audio[int(0.9 * RATE) : int(4.85 * RATE)]  # speech from 1.22 s to 4.64 s
    second = audio[int(13.2 * RATE) : int(16.95 * RATE)]  # speech from 13.47 s to 16.77 s
    silence = np.zeros(RATE, np.float32)
    samples = np.concatenate([first, silence, second, silence])
    two_at = 4.85 - 0.9 + 1.0 - 13.2  # where the second clip's time 0 falls
    return Utterances(
        samples,
        (
            "It was the best of times, it was the worst of times,",
            "it was the season of Light, it was the season of Darkness,",
        ),
        ((1.22 - 0.9, 4.64 - 0.9), (two_at + 13.47, two_at + 16.77)),
    )


@dataclass
class EventPump:
    """Every server event of ``connection``, read in a thread, in order."""

    connection: Any
    events: queue.Queue[Any] = field(default_factory=queue.Queue)
    seen: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for event in self.connection:
                self.events.put(event)
        except Exception as exc:  # the close code arrives as an exception
            self.events.put((CLOSED, exc))
        else:
            self.events.put((CLOSED, None))

    def next(self, timeout: float = 30.0) -> Any:
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no server event within {timeout} s") from None
        self.seen.append(event)
        return event

    def until(self, match: str | Callable[[Any], bool], timeout: float = 60.0) -> list[Any]:
        """Events up to and including the first that ``match`` (a type, or a test)."""
        test = match if callable(match) else (lambda event: event.type == match)
        deadline = time.monotonic() + timeout
        got: list[Any] = []
        while True:
            event = self.next(max(deadline - time.monotonic(), 0.01))
            if isinstance(event, tuple) and event[0] == CLOSED:
                raise AssertionError(f"the connection closed before {match}: {event[1]!r}")
            got.append(event)
            if test(event):
                return got

    def closed(self, timeout: float = 30.0) -> Exception | None:
        """Wait for the end of the connection; the exception that ended it, if any."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(deadline - time.monotonic(), 0.01))
            if isinstance(event, tuple) and event[0] == CLOSED:
                exc: Exception | None = event[1]
                return exc

    def join(self) -> None:
        self._thread.join(10)


@contextmanager
def connect(
    client: openai.OpenAI, *, beta: bool = False, **options: Any
) -> Iterator[tuple[Any, EventPump]]:
    """A realtime transcription connection and its event pump; the first event (the
    created one) has been read."""
    if beta:
        model = options.pop("model", "whisper-1")
        manager = client.beta.realtime.connect(
            model=model, extra_query={"intent": "transcription"}, **options
        )
    else:
        options.setdefault("extra_query", {"intent": "transcription"})
        manager = client.realtime.connect(**options)
    with manager as connection:
        pump = EventPump(connection)
        try:
            yield connection, pump
        finally:
            connection.close()
            pump.join()


def send_audio(
    connection: Any,
    pcm: bytes,
    *,
    pace: float = 1.0,
    chunk_ms: int = 100,
    bytes_per_second: int = RATE * 2,
) -> None:
    """Append ``pcm`` (24 kHz 16-bit unless ``bytes_per_second`` says otherwise) in
    ``chunk_ms`` pieces, ``pace`` times faster than real time (0: as fast as possible)."""
    chunk = bytes_per_second * chunk_ms // 1000
    started = time.monotonic()
    for index, offset in enumerate(range(0, len(pcm), chunk)):
        if pace:
            wait = started + index * chunk_ms / 1000 / pace - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        audio = base64.b64encode(pcm[offset : offset + chunk]).decode()
        connection.input_audio_buffer.append(audio=audio)
