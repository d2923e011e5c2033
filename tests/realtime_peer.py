"""A scripted stand-in for the realtime endpoint, for the Live tab's tests until Bragi
has ``/v1/realtime`` (another branch builds it; then the tests use the real one).

It speaks just enough of OpenAI's Realtime transcription protocol to see what the page
sends: ``POST /v1/realtime/client_secrets`` hands out one short-lived key, the WebSocket
accepts only that key in the ``openai-insecure-api-key.`` subprotocol, answers
``session.update``, sends a ``...transcription.delta`` for every second of audio
appended and a ``...completed`` (its length and loudness) on ``input_audio_buffer.commit``.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from starlette.websockets import WebSocket, WebSocketDisconnect

__all__ = ["RealtimePeer"]

RATE = 24_000


@dataclass
class RealtimePeer:
    secret: str = field(default_factory=lambda: "ek_" + secrets.token_hex(8))
    secret_requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    subprotocols: list[list[str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # without the audio
    audio: bytearray = field(default_factory=bytearray)

    @property
    def samples(self) -> np.ndarray:
        usable = len(self.audio) // 2 * 2
        return np.frombuffer(bytes(self.audio[:usable]), "<i2").astype(np.float32) / 32768

    def install(self, app: FastAPI) -> None:
        app.add_api_route("/v1/realtime/client_secrets", self._client_secret, methods=["POST"])
        app.add_api_websocket_route("/v1/realtime", self._socket)

    async def _client_secret(self, request: Request) -> dict[str, Any]:
        self.authorizations.append(request.headers.get("authorization", ""))
        body = await request.json()
        self.secret_requests.append(body)
        return {"value": self.secret, "expires_at": 0, "session": body.get("session")}

    async def _socket(self, socket: WebSocket) -> None:
        offered = list(socket.scope.get("subprotocols", []))
        self.subprotocols.append(offered)
        if f"openai-insecure-api-key.{self.secret}" not in offered:
            await socket.close(1008)
            return
        await socket.accept(subprotocol="realtime")
        await socket.send_json({"type": "session.created", "session": {}})
        seconds = 0
        try:
            while True:
                event = await socket.receive_json()
                if event["type"] == "input_audio_buffer.append":
                    self.audio += base64.b64decode(event["audio"])
                    self.events.append({"type": event["type"]})
                else:
                    self.events.append(event)
                await self._answer(socket, event, seconds)
                seconds = len(self.audio) // (2 * RATE)
        except WebSocketDisconnect:
            return

    async def _answer(self, socket: WebSocket, event: dict[str, Any], seconds: int) -> None:
        item = {"item_id": "item_1", "content_index": 0}
        if event["type"] == "session.update":
            await socket.send_json({"type": "session.updated", "session": event["session"]})
        elif event["type"] == "input_audio_buffer.append":
            now = len(self.audio) // (2 * RATE)
            if now > seconds:  # another whole second arrived
                delta = {"type": "conversation.item.input_audio_transcription.delta"}
                await socket.send_json(delta | item | {"delta": f"second {now}, "})
        elif event["type"] == "input_audio_buffer.commit":
            samples = self.samples
            loud = float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0
            text = f"{len(samples) / RATE:.1f} s heard, rms {loud:.3f}"
            done = {"type": "conversation.item.input_audio_transcription.completed"}
            await socket.send_json(done | item | {"transcript": text})
