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
    """503 while configured models are still being fetched or their engines installed
    (saying what is missing), or preloaded (``preload: true``: a client that waits for
    readiness then waits for no load), or when none can serve; 200 otherwise. A model
    that failed is reported ("degraded") without holding the others out of service, in
    two words: this route is open, so the details (engine messages, paths) are for keys
    (``/v1/models``, ``/admin/models``) and the log."""
    models = manager.models()
    states = {m.alias: m.state.value for m in models}
    preparing = {ModelState.DOWNLOADING, ModelState.INSTALLING}
    pending = {m.alias: m.progress_text() for m in models if m.state in preparing}
    pending |= {
        m.alias: "loading"
        for m in models
        if m.alias in manager.preloading and m.state not in preparing
    }
    failed = {m.alias: m.failure or "failed" for m in models if m.state is ModelState.FAILED}
    body: dict[str, object] = {"models": states}
    if pending:
        body |= {"status": "not_ready", "pending": pending}
    elif failed and len(failed) == len(models):
        body |= {"status": "not_ready"}
    else:
        body |= {"status": "degraded" if failed else "ready"}
    if failed:
        body["failed"] = failed
    return JSONResponse(body, 503 if body["status"] == "not_ready" else 200)
