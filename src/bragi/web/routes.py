"""Serving the page: ``GET /`` and its files under ``/web/<version>/``.

The page is revalidated on every load (``no-cache`` with an ETag, so a 304 costs one
round trip); its files have the version in their URL and are cached for a year. Both
are sent gzipped to clients that accept it. The Content-Security-Policy lets the page
load and talk to nothing but this server, which also keeps a stolen-script attack
from reading the API key the page holds.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from bragi.errors import NotFoundError
from bragi.web.assets import Asset, Assets

__all__ = ["web_router"]

_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_PAGE_CACHE = "no-cache"
_ASSET_CACHE = "public, max-age=31536000, immutable"


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in {"gzip", "*"}:
            return params.replace(" ", "").lower() not in {"q=0", "q=0.0", "q=0.00", "q=0.000"}
    return False


def _etag_matches(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match", "")
    return any(tag.strip().removeprefix("W/") == etag for tag in given.split(",")) or (
        given.strip() == "*"
    )


def _send(request: Request, asset: Asset, cache: str) -> Response:
    headers = {"Cache-Control": cache, "ETag": asset.etag, "Vary": "Accept-Encoding"}
    headers |= _SECURITY_HEADERS
    if _etag_matches(request, asset.etag):
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and _accepts_gzip(request):
        body, headers["Content-Encoding"] = asset.gzipped, "gzip"
    return Response(body, headers=headers, media_type=asset.content_type)


def web_router(assets: Assets) -> APIRouter:
    """Routes for the page and its files."""
    router = APIRouter(include_in_schema=False)

    @router.api_route("/", methods=["GET", "HEAD"])
    async def page(request: Request) -> Response:
        return _send(request, assets.index, _PAGE_CACHE)

    @router.api_route("/web/{version}/{name:path}", methods=["GET", "HEAD"])
    async def asset(request: Request, version: str, name: str) -> Response:
        found = assets.get(name) if version == assets.version else None
        if found is None:
            # An old version's file is not served under the new one's long cache.
            raise NotFoundError(f"No such file: /web/{version}/{name}")
        return _send(request, found, _ASSET_CACHE)

    return router
