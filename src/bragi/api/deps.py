"""Dependencies the routes declare: settings, the model manager, the caller's key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bragi.auth import KeyRecord, KeyStore
from bragi.config import Settings
from bragi.errors import AuthenticationError, PermissionDeniedError
from bragi.models.manager import ModelManager
from bragi.voices import VoiceStore

__all__ = [
    "AdminKey",
    "ApiKey",
    "Manager",
    "SettingsDep",
    "VoiceStoreDep",
    "require_admin",
    "require_key",
]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _manager(request: Request) -> ModelManager:
    manager: ModelManager = request.app.state.manager
    return manager


def _voice_store(request: Request) -> VoiceStore:
    store: VoiceStore = request.app.state.voices
    return store


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_key(request: Request) -> KeyRecord | None:
    """The caller's key record; None when auth is disabled."""
    keystore: KeyStore | None = request.app.state.keystore
    if keystore is None:
        return None
    token = _bearer_token(request)
    if token is None:
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'. "
            "Create one with `bragi keys create NAME`."
        )
    record = keystore.verify(token)
    if record is None:  # not echoed: a response may end up in a log, with the key in it
        raise AuthenticationError("Incorrect API key provided.")
    return record


def require_admin(key: Annotated[KeyRecord | None, Depends(require_key)]) -> KeyRecord | None:
    if key is not None and not key.is_admin:
        raise PermissionDeniedError("This route needs an admin key.")
    return key


SettingsDep = Annotated[Settings, Depends(_settings)]
Manager = Annotated[ModelManager, Depends(_manager)]
ApiKey = Annotated[KeyRecord | None, Depends(require_key)]
AdminKey = Annotated[KeyRecord | None, Depends(require_admin)]
VoiceStoreDep = Annotated[VoiceStore, Depends(_voice_store)]
