"""The soak's mixed load: each operation is one or two HTTP calls a real client makes,
recorded as (operation, HTTP status, seconds). Everything goes through one httpx client
(thread-safe, keep-alive), with the server's first-boot admin key.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["OPERATIONS", "Call", "Calls", "Load"]

#: Short enough that a run is about the server, not Whisper: a 10 s recording on
#: Whisper tiny.en, one sentence of Piper.
STT_MODEL = "whisper-tiny.en"
TTS_MODEL = "tts-1"
#: The model the admin operations unload and load again (requests for it load it too).
CYCLED_MODEL = "kokoro"
CYCLED_VOICE = "jf_alpha"
SENTENCE = "The birch canoe slid on the smooth planks."


@dataclass(frozen=True, slots=True)
class Call:
    operation: str
    status: int  # 0: no HTTP answer (connection refused or reset, timeout)
    seconds: float
    at: float  # seconds since the run began


@dataclass
class Calls:
    """Every call made, appended from many threads."""

    started: float = field(default_factory=time.monotonic)
    items: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, operation: str, status: int, seconds: float) -> None:
        call = Call(operation, status, seconds, time.monotonic() - self.started)
        with self._lock:
            self.items.append(call)

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.items)


class Load:
    """The operations, bound to one server."""

    def __init__(self, base_url: str, api_key: str, speech: Path, voice_sample: Path):
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=300,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self.speech = speech.read_bytes()
        self.voice_sample = voice_sample.read_bytes()
        self.calls = Calls()
        self._names = itertools.count()

    def close(self) -> None:
        self.http.close()

    def _timed(self, operation: str, send: Callable[[], httpx.Response]) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = send()
        except httpx.HTTPError:
            self.calls.add(operation, 0, time.perf_counter() - started)
            return None
        self.calls.add(operation, response.status_code, time.perf_counter() - started)
        return response

    def _streamed(self, operation: str, method: str, url: str, **options: object) -> None:
        """A call whose time includes reading the whole streamed body."""

        def send() -> httpx.Response:
            with self.http.stream(method, url, **options) as response:  # type: ignore[arg-type]
                response.read()
                return response

        self._timed(operation, send)

    # --- the operations ---------------------------------------------------------

    def transcribe(self) -> None:
        files = {"file": ("beckett.wav", self.speech, "audio/wav")}
        data = {"model": STT_MODEL}
        self._timed(
            "transcribe", lambda: self.http.post("/v1/audio/transcriptions", data=data, files=files)
        )

    def transcribe_stream(self) -> None:
        files = {"file": ("beckett.wav", self.speech, "audio/wav")}
        data = {"model": STT_MODEL, "stream": "true"}
        self._streamed(
            "transcribe_stream", "POST", "/v1/audio/transcriptions", data=data, files=files
        )

    def speak(self) -> None:
        body = {"model": TTS_MODEL, "voice": "alloy", "input": SENTENCE}
        self._streamed("speech", "POST", "/v1/audio/speech", json=body)

    def speak_sse(self) -> None:
        body = {"model": TTS_MODEL, "voice": "alloy", "input": SENTENCE, "stream_format": "sse"}
        self._streamed("speech_sse", "POST", "/v1/audio/speech", json=body)

    def speak_cycled(self) -> None:
        body = {
            "model": CYCLED_MODEL,
            "voice": CYCLED_VOICE,
            "input": SENTENCE,
            "response_format": "wav",
        }
        self._streamed("speech_kokoro", "POST", "/v1/audio/speech", json=body)

    def voice_cycle(self) -> None:
        """Clone a voice from a recording, then delete it."""
        name = f"soak-{next(self._names)}"
        files = {"audio_sample": ("voice.wav", self.voice_sample, "audio/wav")}
        created = self._timed(
            "voice_create",
            lambda: self.http.post("/v1/audio/voices", data={"name": name}, files=files),
        )
        if created is not None and created.status_code == 200:
            voice_id = created.json()["id"]
            self._timed("voice_delete", lambda: self.http.delete(f"/v1/audio/voices/{voice_id}"))

    def admin_cycle(self) -> None:
        """Unload a model, then load it again (admin API)."""
        self._timed("admin_unload", lambda: self.http.post(f"/admin/models/{CYCLED_MODEL}/unload"))
        self._timed("admin_load", lambda: self.http.post(f"/admin/models/{CYCLED_MODEL}/load"))

    def listing(self) -> None:
        self._timed("list", lambda: self.http.get("/v1/models"))
        self._timed("list", lambda: self.http.get("/v1/audio/voices"))
        self._timed("list", lambda: self.http.get("/health/ready"))
        self._timed("list", lambda: self.http.get("/metrics"))


#: operation -> weight in the mix
OPERATIONS: dict[str, tuple[Callable[[Load], None], float]] = {
    "transcribe": (Load.transcribe, 3.0),
    "transcribe_stream": (Load.transcribe_stream, 1.0),
    "speech": (Load.speak, 3.0),
    "speech_sse": (Load.speak_sse, 1.0),
    "speech_kokoro": (Load.speak_cycled, 0.7),
    "voice_cycle": (Load.voice_cycle, 0.5),
    "admin_cycle": (Load.admin_cycle, 0.3),
    "listing": (Load.listing, 1.0),
}


def schedule(seed: int) -> Callable[[], Callable[[Load], None]]:
    """A seeded draw of the next operation, by weight."""
    chooser = random.Random(seed)
    names = list(OPERATIONS)
    weights = [OPERATIONS[name][1] for name in names]

    def draw() -> Callable[[Load], None]:
        return OPERATIONS[chooser.choices(names, weights)[0]][0]

    return draw
