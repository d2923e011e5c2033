"""The admin API (admin keys only): pull, delete, load, unload, list loaded models."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import AsyncIterator
from typing import Any

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from bragi.api.deps import AdminKey, Manager
from bragi.errors import (
    BragiError,
    ConfigError,
    InvalidRequestError,
    ModelUnavailableError,
    NotFoundError,
)
from bragi.models.downloads import DownloadAborted
from bragi.models.manager import ModelManager
from bragi.models.packaged import packaged_dir
from bragi.models.resolve import plan_source, remove_companions
from bragi.models.served import ModelState, ServedModel
from bragi.models.store import DownloadProgress

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
        "memory_bytes": model.memory_bytes,
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
async def delete(name: str, manager: Manager, _: AdminKey) -> dict[str, Any]:
    """Delete a downloaded model's files (not while a served model is loaded from them)."""
    try:
        source = plan_source(name, None, manager.catalog)
    except ConfigError as exc:  # not a catalog name, a repo id or a directory
        raise NotFoundError(exc.message) from None
    if source.path is not None:
        raise InvalidRequestError(f"{name} is a local directory; Bragi does not delete those")
    for model in manager.models():
        if model.engine is not None and model.source.reference == name:
            raise InvalidRequestError(f"{name} is loaded as `{model.alias}`; unload it first")
    freed = 0
    if source.catalog is not None:
        target = packaged_dir(manager.store.root, source.catalog.name)
        if target.is_dir():
            freed += sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
            await to_thread.run_sync(shutil.rmtree, target)
    if source.hub is not None:
        freed += await to_thread.run_sync(manager.store.remove, source.hub)
        companions = await to_thread.run_sync(
            remove_companions, source, manager.store, manager.catalog
        )
        freed += sum(companions.values())
    if not freed:
        raise NotFoundError(f"{name} is not downloaded")
    return {"deleted": name, "freed_bytes": freed}
