"""The admin API (admin keys only): pull, delete, load, unload, list loaded models."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from bragi.api.deps import AdminKey, Manager
from bragi.errors import (
    BragiError,
    ConfigError,
    ConflictError,
    InvalidRequestError,
    ModelUnavailableError,
    PermissionDeniedError,
)
from bragi.models.companions import catalog_companions
from bragi.models.downloads import DownloadAborted
from bragi.models.manager import ModelManager
from bragi.models.removal import plan_removal, remove
from bragi.models.resolve import plan_source
from bragi.models.served import ModelState, ServedModel
from bragi.models.store import DownloadProgress
from bragi.runners.memory import engine_memory

router = APIRouter(prefix="/admin", tags=["admin"])
log = logging.getLogger(__name__)
_PREPARING = frozenset({ModelState.DOWNLOADING, ModelState.INSTALLING})


class PullRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, description="catalog name or hub repo id")
    revision: str | None = None


def _loaded_view(model: ServedModel, manager: ModelManager) -> dict[str, Any]:
    now = manager.clock()
    return {
        "id": model.alias,
        "backend": model.backend_name,
        "kind": model.kind.value if model.kind else None,
        "state": model.state.value,
        # a worker's whole process, live; an in-process engine's growth at load
        "memory_bytes": engine_memory(model.engine) or model.memory_bytes,
        "in_use": model.in_use,
        "running": model.running,
        "waiting": model.waiting,
        "requests_served": model.requests_served,
        "keep_alive": model.keep_alive(manager.settings.keep_alive),
        "unload_in": model.unload_in(now, manager.settings.keep_alive),
        "error": model.error,
        # a download's or an engine install's, while the model waits on one
        "progress": model.progress_text() if model.state in _PREPARING else None,
    }


@router.get("/models")
async def list_loaded(manager: Manager, _: AdminKey) -> dict[str, Any]:
    """Every configured model with its state; loaded ones first."""
    models = sorted(manager.models(), key=lambda m: m.engine is None)
    return {"object": "list", "data": [_loaded_view(m, manager) for m in models]}


@router.post("/models/{alias:path}/load")
async def load(alias: str, manager: Manager, _: AdminKey) -> dict[str, Any]:
    model = await manager.load(alias)
    return _loaded_view(model, manager)


@router.post("/models/{alias:path}/unload")
async def unload(alias: str, manager: Manager, _: AdminKey) -> dict[str, Any]:
    unloaded = await manager.unload(alias)
    view = _loaded_view(manager.get(alias), manager)
    return view | {"unloaded": unloaded}


@router.post("/pull")
async def pull(request: PullRequest, manager: Manager, _: AdminKey) -> StreamingResponse:
    """Download a model into the store, streaming progress as JSON lines."""
    if not manager.settings.allow_downloads:
        raise PermissionDeniedError(
            "This server does not download models (allow_downloads: false); pull them where "
            "downloads are allowed, with `bragi pull` (in Kubernetes: the bragi-pull Job).",
            code="downloads_disabled",
        )
    try:
        source = plan_source(request.model, request.revision, manager.catalog)
    except ConfigError as exc:  # not a catalog name, a repo id or a directory
        raise InvalidRequestError(exc.message, param="model") from None
    events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def on_progress(progress: DownloadProgress) -> None:
        event = {
            "status": "downloading",
            "file": progress.filename,
            "completed": progress.bytes_done,
            "total": progress.bytes_total,
        }
        loop.call_soon_threadsafe(events.put_nowait, event)

    async def run() -> None:
        try:
            path = await manager.downloads.fetch(source, on_progress)
            # what the model's options name beside it (a diarizer's embedding model)
            for field, companion in catalog_companions(source, manager.registry).items():
                await events.put({"status": "pulling", "source": companion.origin, "for": field})
                await manager.downloads.fetch(companion, on_progress)
            await events.put({"status": "success", "model": request.model, "path": str(path)})
        except DownloadAborted:
            stopping = ModelUnavailableError("The server is stopping; pull again later.")
            await events.put({"status": "error", "error": stopping.to_body()["error"]})
        except BragiError as exc:
            await events.put({"status": "error", "error": exc.to_body()["error"]})
        except Exception:  # the stream still ends with an error event, never cut short
            log.exception("pulling %s failed", request.model)
            failed = BragiError("The server had an error while pulling the model.")
            await events.put({"status": "error", "error": failed.to_body()["error"]})
        finally:
            await events.put(None)

    async def body() -> AsyncIterator[bytes]:
        task = asyncio.create_task(run())
        try:
            start: dict[str, Any] = {"status": "pulling", "source": source.origin}
            if source.catalog is not None:  # said before a user builds on the model
                start |= {
                    "license": source.catalog.license,
                    "non_commercial": source.catalog.non_commercial,
                }
            yield (json.dumps(start) + "\n").encode()
            while (event := await events.get()) is not None:
                yield (json.dumps(event) + "\n").encode()
        finally:
            await task

    return StreamingResponse(body(), media_type="application/x-ndjson")


@router.delete("/models/{name:path}")
async def delete(name: str, manager: Manager, _: AdminKey, dry_run: bool = False) -> dict[str, Any]:
    """Delete a downloaded model's files: only what no other catalog entry shares, and
    never what a configured model uses, in any state (409). ``?dry_run=true`` only says."""
    configured = {f"`{m.alias}` ({m.state.value})": m.source for m in manager.models()}
    plan = partial(plan_removal, name, manager.store, manager.catalog, configured)
    removal = await to_thread.run_sync(plan)
    if removal.users:
        raise ConflictError(
            f"{name} is in use: configured model {', '.join(removal.users)} uses its files; "
            "take it out of the configuration first",
            code="model_in_use",
        )
    freed = removal.freed_bytes
    if not dry_run:
        freed = await to_thread.run_sync(remove, removal, manager.store)
    return {
        "deleted": name,
        "dry_run": dry_run,
        "freed_bytes": freed,
        "files": [item.label for item in removal.deleted],
        "kept": [{"file": item.label, "why": item.why} for item in removal.kept],
        "note": removal.note or None,
    }
