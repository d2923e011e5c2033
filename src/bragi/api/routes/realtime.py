"""The Realtime API's HTTP side: ephemeral keys for browsers, ``POST
/v1/realtime/client_secrets`` (GA) and ``POST /v1/realtime/transcription_sessions`` (beta).

A server-side app with a real key asks for a short-lived ``ek_`` key (10 s to 2 h,
default 10 min) and hands it to a browser, which opens ``/v1/realtime`` with it. The key
is stored hashed in the key store, works for Realtime sessions only (every other route
refuses it), stops working when it expires or its maker is revoked, and carries the
session configuration it was asked with: sessions opened with it start from that.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from bragi.api.deps import ApiKey
from bragi.auth import EPHEMERAL_PREFIX, KeyStore
from bragi.realtime.events import new_id
from bragi.realtime.service import RealtimeService
from bragi.realtime.session_config import SessionConfig, parse_session, render_beta, render_ga

__all__ = ["router"]

router = APIRouter(tags=["realtime"])

DEFAULT_SECONDS = 600


class ExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    anchor: Literal["created_at"] = "created_at"
    seconds: int = Field(default=DEFAULT_SECONDS, ge=10, le=7200)


class ClientSecretRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_after: ExpiresAfter = Field(default_factory=ExpiresAfter)
    session: dict[str, Any] | None = None


class BetaClientSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_at: ExpiresAfter = Field(default_factory=ExpiresAfter)


class BetaSessionRequest(BaseModel):
    """The beta REST call's body: the beta session fields plus ``client_secret``."""

    model_config = ConfigDict(extra="allow")

    client_secret: BetaClientSecret = Field(default_factory=BetaClientSecret)


def _configure(
    service: RealtimeService, session: dict[str, Any] | None, *, beta: bool
) -> SessionConfig:
    config = service.initial_config(None)
    if session is None:
        return config
    config = parse_session(config, session, beta=beta)
    param = (
        "session.input_audio_transcription.model"
        if beta
        else ("session.audio.input.transcription.model")
    )
    service.check_model(config.model, param)
    return config


async def _mint(
    request: Request, key: ApiKey, seconds: int, session: dict[str, Any] | None, *, beta: bool
) -> tuple[str, int]:
    """A new ephemeral key and its expiry (Unix seconds)."""
    keystore: KeyStore | None = request.app.state.keystore
    lifetime = timedelta(seconds=seconds)
    if keystore is None or key is None:  # auth disabled: any key works, none is stored
        value = EPHEMERAL_PREFIX + secrets.token_urlsafe(32)
        return value, int((datetime.now(UTC) + lifetime).timestamp())
    preset = json.dumps({"beta": beta, "session": session}) if session else None
    created = await to_thread.run_sync(keystore.create_ephemeral, key, lifetime, preset)
    return created.key, int(created.record.expires_at.timestamp())


@router.post("/v1/realtime/client_secrets")
async def create_client_secret(
    body: ClientSecretRequest, request: Request, key: ApiKey
) -> dict[str, Any]:
    service: RealtimeService = request.app.state.realtime
    config = _configure(service, body.session, beta=False)
    value, expires_at = await _mint(
        request, key, body.expires_after.seconds, body.session, beta=False
    )
    return {
        "value": value,
        "expires_at": expires_at,
        "session": render_ga(config, new_id("sess"), expires_at),
    }


@router.post("/v1/realtime/transcription_sessions")
async def create_transcription_session(
    body: BetaSessionRequest, request: Request, key: ApiKey
) -> dict[str, Any]:
    service: RealtimeService = request.app.state.realtime
    session = body.model_extra or None
    config = _configure(service, session, beta=True)
    seconds = body.client_secret.expires_at.seconds
    value, expires_at = await _mint(request, key, seconds, session, beta=True)
    rendered = render_beta(config, new_id("sess"), expires_at)
    return rendered | {"client_secret": {"value": value, "expires_at": expires_at}}
