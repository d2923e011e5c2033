"""``GET /v1/me``: what the caller's key may do, so a client (the web page) can offer
only that. Any valid key may ask; with auth disabled the answer says so."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.routing import BaseRoute

from bragi import __version__
from bragi.api.deps import ApiKey

router = APIRouter(tags=["auth"])

#: Optional endpoints a client may look for: feature ─▶ the route that provides it.
_FEATURE_ROUTES = {"realtime": "/v1/realtime"}


def _serves(routes: list[BaseRoute], path: str) -> bool:
    return any(getattr(route, "path", None) == path for route in routes)


@router.get("/v1/me")
async def me(request: Request, key: ApiKey) -> dict[str, Any]:
    """The key (never its secret), whether it may use the admin API, and which optional
    endpoints this server has."""
    routes = request.app.routes
    return {
        "object": "bragi.me",
        "auth": key is not None,
        "key": None
        if key is None
        else {"id": key.id, "name": key.name, "role": key.role, "prefix": key.prefix},
        "admin": key is None or key.is_admin,
        "features": {name: _serves(routes, path) for name, path in _FEATURE_ROUTES.items()},
        "version": __version__,
    }
