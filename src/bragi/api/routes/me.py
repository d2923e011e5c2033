"""``GET /v1/me``: what the caller's key may do, so a client (the web page) can offer
only that. Any valid key may ask; with auth disabled the answer says so."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from bragi import __version__
from bragi.api.deps import ApiKey, SettingsDep

router = APIRouter(tags=["auth"])


@router.get("/v1/me")
async def me(key: ApiKey, settings: SettingsDep) -> dict[str, Any]:
    """The key (never its secret), whether it may use the admin API, and which optional
    endpoints this server has."""
    return {
        "object": "bragi.me",
        "auth": key is not None,
        "key": None
        if key is None
        else {"id": key.id, "name": key.name, "role": key.role, "prefix": key.prefix},
        "admin": key is None or key.is_admin,
        # create_app serves /v1/realtime exactly when this is on (FastAPI's included
        # routers no longer show their paths in app.routes, so the settings say it)
        "features": {"realtime": settings.realtime.enabled},
        "version": __version__,
    }
