"""Dependencies the routes declare: settings, the model manager, the caller's key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bragi.auth import KeyRecord, KeyStore, bearer_token, check_key
from bragi.auth.ratelimit import RateLimiter
from bragi.config import Settings
from bragi.errors import PermissionDeniedError
from bragi.models.manager import ModelManager
from bragi.voices import VoiceStore

__all__ = [
    "AdminKey",
    "ApiKey",
    "Manager",
    "SettingsDep",
    "VoiceStoreDep",
    "require_admin",
    "require_allowed_key",
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


def require_key(request: Request) -> KeyRecord | None:
    """The caller's key record; None when auth is disabled."""
    keystore: KeyStore | None = request.app.state.keystore
    if keystore is None:
        return None
    return check_key(keystore, bearer_token(request.headers))


def require_allowed_key(
    request: Request, key: Annotated[KeyRecord | None, Depends(require_key)]
) -> KeyRecord | None:
    """The caller's key, once its request rate is checked (429 past
    ``rate_limit_per_minute``)."""
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if key is not None and limiter is not None:
        limiter.check(key.id)
    return key


def require_admin(
    key: Annotated[KeyRecord | None, Depends(require_allowed_key)],
) -> KeyRecord | None:
    if key is not None and not key.is_admin:
        raise PermissionDeniedError("This route needs an admin key.")
    return key


SettingsDep = Annotated[Settings, Depends(_settings)]
Manager = Annotated[ModelManager, Depends(_manager)]
ApiKey = Annotated[KeyRecord | None, Depends(require_allowed_key)]
AdminKey = Annotated[KeyRecord | None, Depends(require_admin)]
VoiceStoreDep = Annotated[VoiceStore, Depends(_voice_store)]
