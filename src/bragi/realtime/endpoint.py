"""``GET /v1/realtime``: the Realtime API's WebSocket, for transcription sessions.

The key is checked before the upgrade is accepted: ``Authorization: Bearer`` (an API key
or an ``ek_`` ephemeral key), or, from browsers, the subprotocol
``openai-insecure-api-key.<key>`` beside ``realtime``; a missing or wrong key gets the
HTTP 401 error body and never reaches a session. Then:

- ``?intent=transcription`` (what OpenAI wants), optionally ``&model=ALIAS`` (what older
  and third-party clients send; the alias becomes the transcription model). A conversation
  session (``model`` without ``intent``) gets an ``error`` and close 1008; an unknown
  model in the URL an ``error`` and close 4000 (``invalid_request_error.invalid_model``),
  as OpenAI closes.
- ``realtime.max_sessions`` open already: ``error`` (``rate_limit_exceeded``), close 1013
  (clients that reconnect retry it).
- A session lasts ``realtime.max_session_minutes``, then ``error`` (``session_expired``)
  and close 1000.

One reader handles client events in order; one writer sends server events, so a slow
decode never stops the reading and a client that stops reading is closed (1008) once
:data:`MAX_PENDING_EVENTS` wait for it, instead of growing the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect, WebSocketState

from bragi.auth import EPHEMERAL_PREFIX, KeyStore, bearer_token, check_key
from bragi.auth.ratelimit import RateLimiter
from bragi.errors import AuthenticationError, BragiError, InvalidRequestError, RateLimitError
from bragi.realtime.service import RealtimeService
from bragi.realtime.session import RealtimeSession
from bragi.realtime.session_config import SessionConfig, parse_session

__all__ = ["MAX_PENDING_EVENTS", "router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["realtime"])

KEY_SUBPROTOCOL = "openai-insecure-api-key."
REALTIME_SUBPROTOCOL = "realtime"
CLOSE_NORMAL, CLOSE_POLICY, CLOSE_INTERNAL_ERROR, CLOSE_TRY_AGAIN = 1000, 1008, 1011, 1013
CLOSE_INVALID_MODEL = 4000
MAX_PENDING_EVENTS = 4096
_CLOSE_TIMEOUT_S = 5.0


def _subprotocols(websocket: WebSocket) -> list[str]:
    offered: list[str] = websocket.scope.get("subprotocols", [])
    return offered


def _token(websocket: WebSocket) -> str | None:
    token = bearer_token(websocket.headers)
    if token is not None:
        return token
    for offered in _subprotocols(websocket):
        if offered.startswith(KEY_SUBPROTOCOL) and len(offered) > len(KEY_SUBPROTOCOL):
            return offered[len(KEY_SUBPROTOCOL) :]
    return None


def _authenticate(
    keystore: KeyStore | None, token: str | None, limiter: RateLimiter | None
) -> str | None:
    """Check the caller's key and spend one request of its rate (an ephemeral key's
    maker's); an ephemeral key's session configuration (JSON), if any."""
    if keystore is None:
        return None
    if token is not None and token.startswith(EPHEMERAL_PREFIX):
        ephemeral = keystore.verify_ephemeral(token)
        if ephemeral is None:
            raise AuthenticationError(
                "Incorrect or expired ephemeral key: ask your server for a new one "
                "(POST /v1/realtime/client_secrets)."
            )
        key_id, preset = ephemeral.key_id, ephemeral.session
    else:
        key_id, preset = check_key(keystore, token).id, None
    if limiter is not None:
        limiter.check(key_id)
    return preset


async def _refuse(websocket: WebSocket, error: BragiError) -> None:
    """Answer the upgrade with the HTTP error body, or (server without the WebSocket
    denial extension) accept, send the ``error`` event, close 1008."""
    try:
        headers = (
            {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimitError) else None
        )
        response = JSONResponse(error.to_body(), status_code=error.status_code, headers=headers)
        await websocket.send_denial_response(response)
    except RuntimeError:
        await websocket.accept()
        await _close_with(websocket, error, CLOSE_POLICY)


async def _close_with(websocket: WebSocket, error: BragiError, code: int, reason: str = "") -> None:
    event = {"type": "error", "event_id": "event_closing", "error": error.to_body()["error"]}
    with contextlib.suppress(Exception):  # the client may be gone already
        await asyncio.wait_for(websocket.send_text(json.dumps(event)), _CLOSE_TIMEOUT_S)
        await asyncio.wait_for(websocket.close(code, reason), _CLOSE_TIMEOUT_S)


def _first_config(
    service: RealtimeService, websocket: WebSocket, preset: str | None
) -> SessionConfig:
    """The session's starting configuration: the URL's model, or the one an ephemeral key
    carries, or the server's default. Raises for a model in the URL that cannot serve."""
    model = websocket.query_params.get("model")
    if model:
        service.check_model(model, "model")
    config = service.initial_config(model)
    if preset:
        try:
            stored = json.loads(preset)
            config = parse_session(config, stored["session"], beta=stored["beta"])
            service.check_model(config.model, "model")
        except (BragiError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring an ephemeral key's session configuration: %s", exc)
            return service.initial_config(model)
    return config


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    service: RealtimeService = websocket.app.state.realtime
    keystore: KeyStore | None = websocket.app.state.keystore
    try:
        limiter: RateLimiter | None = websocket.app.state.rate_limiter
        preset = await to_thread.run_sync(_authenticate, keystore, _token(websocket), limiter)
    except (AuthenticationError, RateLimitError) as exc:
        await _refuse(websocket, exc)
        return
    offered = _subprotocols(websocket)
    # Never echo the key subprotocol: browsers offer "realtime" beside it.
    await websocket.accept(REALTIME_SUBPROTOCOL if REALTIME_SUBPROTOCOL in offered else None)
    query = websocket.query_params
    intent, model = query.get("intent"), query.get("model")
    if intent not in (None, "transcription") or (intent is None and model):
        error = InvalidRequestError(
            "Bragi serves transcription sessions only: connect with ?intent=transcription "
            "(conversation sessions, speech to speech, are not supported).",
            param="intent",
            code="unsupported_session_type",
        )
        await _close_with(websocket, error, CLOSE_POLICY)
        return
    try:
        config = _first_config(service, websocket, preset)
    except BragiError as exc:
        await _close_with(
            websocket, exc, CLOSE_INVALID_MODEL, "invalid_request_error.invalid_model"
        )
        return
    beta = "realtime=v1" in websocket.headers.get("openai-beta", "").lower()
    await _serve(websocket, service, config, beta)


async def _serve(
    websocket: WebSocket, service: RealtimeService, config: SessionConfig, beta: bool
) -> None:
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    stuck = asyncio.Event()

    def send(event: dict[str, Any]) -> None:
        if outbox.qsize() >= MAX_PENDING_EVENTS:
            stuck.set()
        else:
            outbox.put_nowait(event)

    session = RealtimeSession(service, config, beta=beta, send=send)
    if not service.admit(session):
        error = RateLimitError(
            f"This server has {service.settings.max_sessions} realtime sessions open, its "
            "limit (realtime.max_sessions). Retry shortly."
        )
        await _close_with(websocket, error, CLOSE_TRY_AGAIN)
        return
    tasks: list[asyncio.Task[Any]] = []
    closing: tuple[BragiError, int] | None = None
    try:
        await session.start()
        limit = service.settings.max_session_minutes * 60
        tasks = [
            asyncio.create_task(_read(websocket, session, service)),
            asyncio.create_task(_write(websocket, outbox)),
            asyncio.create_task(stuck.wait()),
            asyncio.create_task(asyncio.sleep(limit)),
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        reader, _writer, overflow, expiry = tasks
        if expiry in done:
            minutes = service.settings.max_session_minutes
            closing = (
                InvalidRequestError(
                    f"Your session hit the maximum duration of {minutes:g} minutes.",
                    code="session_expired",
                ),
                CLOSE_NORMAL,
            )
        elif overflow in done:
            closing = (
                InvalidRequestError(
                    f"More than {MAX_PENDING_EVENTS} events are waiting for this client to "
                    "read them; closing.",
                    code="client_too_slow",
                ),
                CLOSE_POLICY,
            )
        elif reader in done and reader.exception() is not None:
            log.error("realtime session failed", exc_info=reader.exception())
            closing = (
                BragiError("The server had an error while processing your session."),
                CLOSE_INTERNAL_ERROR,
            )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        service.leave(session)  # its place is free now; a decode under way still finishes
        await session.close()
        if closing is not None:
            await _close_with(websocket, *closing)
        elif websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(CLOSE_NORMAL), _CLOSE_TIMEOUT_S)


async def _read(websocket: WebSocket, session: RealtimeSession, service: RealtimeService) -> None:
    limit = service.settings.max_event_bytes
    while True:
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            session.handle_binary()
        elif len(text) > limit:
            session.send_error(
                InvalidRequestError(
                    f"The event is {len(text) / 2**20:.1f} MiB; events may be at most "
                    f"{limit / 2**20:g} MiB (send the audio in several appends).",
                    code="event_too_large",
                )
            )
        else:
            await session.handle_text(text)


async def _write(websocket: WebSocket, outbox: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        event = await outbox.get()
        try:
            await websocket.send_text(json.dumps(event))
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the client is gone; the reader sees it too
