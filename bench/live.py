"""A live turn through an OpenAI Realtime transcription endpoint, timed by the client.

The turn's audio goes out at real pace in 100 ms appends (server VAD on); every server
event is stamped with the time it arrived, so the suite can read the time from the
start of speech to the first partial text and from ``speech_stopped`` to ``completed``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

__all__ = ["LiveTurn", "live_turn"]

CHUNK_MS = 100
RATE = 24_000
TIMEOUT_S = 300.0


@dataclass
class LiveTurn:
    started: float  # when the first append went out (perf_counter)
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def first(self, kind: str) -> float | None:
        return next((at for at, event in self.events if event.get("type") == kind), None)

    def first_suffix(self, suffix: str) -> float | None:
        return next((at for at, e in self.events if str(e.get("type")).endswith(suffix)), None)

    @property
    def text(self) -> str:
        for _at, event in self.events:
            if str(event.get("type")).endswith("input_audio_transcription.completed"):
                return str(event.get("transcript", ""))
        return ""

    def stop_to_final(self) -> float:
        stopped = self.first("input_audio_buffer.speech_stopped")
        final = self.first_suffix("input_audio_transcription.completed")
        if stopped is None or final is None:
            raise RuntimeError(f"the turn did not complete: {[e for _, e in self.events][-3:]}")
        return final - stopped

    def first_partial(self, speech_at: float) -> float | None:
        """Seconds from the moment speech began (``speech_at`` into the audio) to the
        first text; None when no text came before the turn ended."""
        delta = self.first_suffix("input_audio_transcription.delta")
        stopped = self.first("input_audio_buffer.speech_stopped")
        if delta is None or stopped is None or delta > stopped:
            return None
        return delta - (self.started + speech_at)


def _url(base_url: str, model: str, with_model: bool) -> str:
    query = {"intent": "transcription"} | ({"model": model} if with_model else {})
    return base_url.replace("http://", "ws://").replace("https://", "wss://") + (
        "/v1/realtime?" + urlencode(query)
    )


def live_turn(
    base_url: str, api_key: str, model: str, pcm: bytes, *, model_in_url: bool = False
) -> LiveTurn:
    """Send one turn (24 kHz 16-bit mono, ending in enough silence for the server's VAD)
    and wait for its final text."""
    from websockets.sync.client import connect

    headers = {"Authorization": f"Bearer {api_key}"}
    with connect(_url(base_url, model, model_in_url), additional_headers=headers) as socket:
        json.loads(socket.recv(timeout=60))  # session.created
        session = {"type": "transcription", "audio": {"input": {"transcription": {"model": model}}}}
        socket.send(json.dumps({"type": "session.update", "session": session}))
        while json.loads(socket.recv(timeout=60)).get("type") != "session.updated":
            pass
        turn = LiveTurn(time.perf_counter())
        done = threading.Event()

        def receive() -> None:
            try:
                while not done.is_set():
                    event = json.loads(socket.recv(timeout=TIMEOUT_S))
                    turn.events.append((time.perf_counter(), event))
                    if str(event.get("type")).endswith(("transcription.completed", ".failed")):
                        done.set()
            except Exception:  # a timeout or a close: stop_to_final() reports it
                done.set()

        receiver = threading.Thread(target=receive, daemon=True)
        turn.started = time.perf_counter()
        receiver.start()
        size = RATE * 2 * CHUNK_MS // 1000
        for index, offset in enumerate(range(0, len(pcm), size)):
            wait = turn.started + index * CHUNK_MS / 1000 - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            audio = base64.b64encode(pcm[offset : offset + size]).decode()
            socket.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        done.wait(TIMEOUT_S)
        receiver.join(5)
    return turn
