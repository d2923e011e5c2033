"""``GET /v1/models``: what this server serves, self-described."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from bragi.api.deps import ApiKey, Manager
from bragi.backends.protocol import InstructionListing, Instructions, ModelKind, TextToSpeech
from bragi.models.manager import ModelManager
from bragi.models.served import ServedModel

router = APIRouter(tags=["models"])
_STARTED = int(time.time())


def _created(model: ServedModel) -> int:
    try:
        return int(model.model_dir.stat().st_mtime) if model.model_dir else _STARTED
    except OSError:
        return _STARTED


def _engine_languages(model: ServedModel) -> list[str] | None:
    """What a loaded engine says it understands (None: many, or not loaded yet)."""
    if model.engine is None:
        return None
    languages = model.engine.capabilities.languages
    return sorted(languages) if languages else None


def _instructions(model: ServedModel) -> Instructions | None:
    """What a TTS model does with ``instructions``: from its engine once loaded, else from
    its files when the backend can tell (None: not known until it loads)."""
    if isinstance(model.engine, TextToSpeech):
        return model.engine.capabilities.instructions
    if isinstance(model.backend, InstructionListing) and model.model_dir is not None:
        return model.backend.instructions_in(model.model_dir, model.options)
    return None


def describe_model(model: ServedModel, manager: ModelManager) -> dict[str, Any]:
    entry = model.source.catalog
    languages = list(entry.languages) if entry and entry.languages else _engine_languages(model)
    description: dict[str, Any] = {
        "id": model.alias,
        "object": "model",
        "created": _created(model),
        "owned_by": "bragi",
        "kind": model.kind.value if model.kind else None,
        "backend": model.backend_name,
        "state": model.state.value,
        "source": model.config.model,
        "description": entry.description if entry else None,
        "languages": languages,
        # From the catalog (None for a model given by repo id or path: see its card).
        "license": entry.license if entry else None,
        "non_commercial": entry.non_commercial if entry else None,
    }
    if model.error:
        description["error"] = model.error
    if model.state.value == "downloading" and model.progress is not None:
        description["progress"] = model.progress_text()
    if model.install is not None:  # its engine environment is being installed
        description["progress"] = f"{model.progress_text()}: {model.install.last_line}"
    if model.kind is ModelKind.TTS:
        description["instructions"] = _instructions(model)
    voices = manager.voices_of(model)
    if voices is not None:
        description["voices"] = [
            {"id": v.id, "language": v.language, "gender": v.gender} for v in voices
        ]
    return description


@router.get("/v1/models")
async def list_models(manager: Manager, _: ApiKey) -> dict[str, Any]:
    return {"object": "list", "data": [describe_model(m, manager) for m in manager.models()]}


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, manager: Manager, _: ApiKey) -> dict[str, Any]:
    return describe_model(manager.get(model_id), manager)
