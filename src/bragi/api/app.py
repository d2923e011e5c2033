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
from bragi.api.routes import admin, health, metrics, models, speech, transcriptions, voices
from bragi.api.upload_limit import UploadLimitMiddleware
from bragi.auth import KeyStore
from bragi.backends.registry import BackendRegistry
from bragi.config import Settings
from bragi.models.configure import build_manager
from bragi.models.manager import ModelManager
from bragi.voices import VoiceStore

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
    registry = registry or BackendRegistry.from_entry_points()
    manager = manager or build_manager(settings, registry)
    if keystore is None and settings.auth_enabled:
        keystore = KeyStore(settings.data_dir / "keys.db")
    voice_store = voice_store or VoiceStore.for_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if keystore is not None:
            announce_first_key(keystore)
        else:
            log.warning("authentication is disabled (BRAGI_AUTH=disabled): local use only")
        await manager.start()
        try:
            yield
        finally:
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
    install_error_handlers(app)
    app.state.metrics = Metrics(manager)
    app.add_middleware(UploadLimitMiddleware, limit=settings.upload_limit_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    routers = (health, metrics, models, transcriptions, speech, voices, admin)
    for module in routers:
        app.include_router(module.router)
    return app
