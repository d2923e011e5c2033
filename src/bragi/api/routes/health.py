"""Liveness and readiness; open without a key."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from bragi.api.deps import Manager
from bragi.models.served import ModelState

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is alive and answering."""
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(manager: Manager) -> JSONResponse:
    """200 once every configured model can serve; 503 with what is missing until then."""
    models = {m.alias: m.state.value for m in manager.models()}
    pending = {
        m.alias: (m.error if m.state is ModelState.FAILED else m.progress_text())
        for m in manager.models()
        if m.state not in (ModelState.AVAILABLE, ModelState.LOADED)
    }
    if not pending:
        return JSONResponse({"status": "ready", "models": models})
    return JSONResponse({"status": "not_ready", "models": models, "pending": pending}, 503)
