"""What can be pulled and what is on disk (admin keys), for choosing what to pull or
remove: ``GET /admin/catalog`` and ``GET /admin/downloads``."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request

from bragi.api.deps import AdminKey, Manager
from bragi.errors import BragiError
from bragi.models.catalog import CatalogEntry
from bragi.models.manager import ModelManager
from bragi.models.on_disk import downloaded_models
from bragi.models.resolve import local_copy, plan_source

router = APIRouter(prefix="/admin", tags=["admin"])


def _served_as(manager: ModelManager, name: str) -> list[str]:
    return sorted(m.alias for m in manager.models() if m.source.reference == name)


def _entry_view(entry: CatalogEntry, manager: ModelManager) -> dict[str, Any]:
    try:
        source = plan_source(entry.name, None, manager.catalog)
        on_disk = local_copy(source, manager.store)
        origin = "pypi" if source.packaged else "hub"
    except BragiError:  # an entry with no usable source: not on disk
        on_disk, origin = None, "hub"
    return {
        "name": entry.name,
        "kind": entry.kind.value,
        "backend": entry.backend,
        "description": entry.description,
        "languages": list(entry.languages),
        "license": entry.license,
        "size_mb": entry.size_mb,
        "source": origin,
        "downloaded": on_disk is not None,
        "served_as": _served_as(manager, entry.name),
    }


@router.get("/catalog")
async def catalog(manager: Manager, _: AdminKey) -> dict[str, Any]:
    """Every catalog entry, whether it is on disk, and the aliases serving it."""

    def describe() -> list[dict[str, Any]]:
        return [_entry_view(entry, manager) for entry in manager.catalog.entries()]

    return {"object": "list", "data": await to_thread.run_sync(describe)}


@router.get("/downloads")
async def downloads(request: Request, manager: Manager, _: AdminKey) -> dict[str, Any]:
    """Every model on disk (what ``bragi list`` shows): its name for ``DELETE
    /admin/models/{name}``, where it came from, its size and the engines it suits."""
    found = await to_thread.run_sync(
        downloaded_models, manager.store, request.app.state.registry, manager.catalog
    )
    data = [
        {
            "name": model.name,
            "source": model.source,
            "size_bytes": model.size_bytes,
            "backends": list(model.backends),
            "served_as": _served_as(manager, model.name),
        }
        for model in found
    ]
    return {"object": "list", "data": data}
