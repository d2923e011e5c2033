"""The FastAPI application factory."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bragi import __version__
from bragi.api.errors import install_error_handlers
from bragi.api.metrics import Metrics, MetricsMiddleware
from bragi.api.routes import (
    admin,
    health,
    metrics,
    models,
    realtime,
    speech,
    transcriptions,
    voices,
)
from bragi.api.routes.downloads import router as downloads_router
from bragi.api.routes.me import router as me_router
from bragi.api.upload_limit import UploadLimitMiddleware
from bragi.auth import KeyStore
from bragi.auth.ratelimit import RateLimiter
from bragi.backends.registry import BackendRegistry
from bragi.config import Settings
from bragi.datadir import make_private_dir
from bragi.models.configure import build_manager
from bragi.models.manager import ModelManager
from bragi.realtime import RealtimeService
from bragi.realtime import router as realtime_socket
from bragi.voices import VoiceStore
from bragi.web import Assets, web_router

__all__ = ["create_app"]

log = logging.getLogger("bragi")


def announce_first_key(keystore: KeyStore) -> None:
    """On first boot, create an admin key and show it once (only its hash is kept), on
    standard error itself: not through logging, whose handlers may ship it elsewhere."""
    created = keystore.bootstrap()
    if created is None:
        return
    sys.stderr.write(
        f"\n    First boot: created admin API key (shown only this once):\n\n"
        f"        {created.key}\n\n"
        "    Use it as `Authorization: Bearer <key>` (OpenAI clients: api_key=...).\n"
        "    More keys: `bragi keys create NAME`.\n\n"
    )
    sys.stderr.flush()
    log.warning("first boot: created an admin API key, printed once on standard error")


def create_app(
    settings: Settings,
    *,
    registry: BackendRegistry | None = None,
    manager: ModelManager | None = None,
    keystore: KeyStore | None = None,
    voice_store: VoiceStore | None = None,
) -> FastAPI:
    """Build the app. Everything it needs is passed in or built from ``settings``."""
    make_private_dir(settings.data_dir)  # keys and voices: whoever creates it, 0700
    registry = registry or BackendRegistry.from_entry_points()
    manager = manager or build_manager(settings, registry)
    if keystore is None and settings.auth_enabled:
        keystore = KeyStore(settings.data_dir / "keys.db")
    voice_store = voice_store or VoiceStore.for_settings(settings)
    if settings.wyoming.enabled:
        from bragi.wyoming import WyomingListener, check_settings

        check_settings(settings, manager)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if keystore is not None:
            announce_first_key(keystore)
        else:
            log.warning("authentication is disabled (BRAGI_AUTH=disabled): local use only")
        wyoming = app.state.wyoming
        if wyoming is not None:
            # Before the models load: Home Assistant's describe must not wait for them.
            await wyoming.start()
        await manager.start()
        try:
            yield
        finally:
            if wyoming is not None:
                await wyoming.stop()
            if settings.realtime.enabled:
                await app.state.realtime.stop()
            await manager.stop()

    app = FastAPI(
        title="Bragi",
        version=__version__,
        summary="Open speech engines behind the OpenAI Audio API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.manager = manager
    app.state.keystore = keystore
    app.state.registry = registry
    app.state.voices = voice_store
    limit = settings.rate_limit_per_minute
    app.state.rate_limiter = RateLimiter(limit) if limit else None
    install_error_handlers(app)
    app.state.metrics = Metrics(manager)
    app.state.wyoming = None
    if settings.wyoming.enabled:
        app.state.wyoming = WyomingListener(settings, manager, voice_store, app.state.metrics)
    app.add_middleware(UploadLimitMiddleware, limit=settings.upload_limit_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    routers = (health, metrics, models, transcriptions, speech, voices, admin)
    for module in routers:
        app.include_router(module.router)
    app.include_router(me_router)
    app.include_router(downloads_router)
    if settings.web.enabled:
        app.include_router(web_router(Assets.packaged(auth=settings.auth_enabled)))
    if settings.realtime.enabled:
        app.state.realtime = RealtimeService(settings.realtime, manager, app.state.metrics)
        app.include_router(realtime_socket)
        app.include_router(realtime.router)
    return app
