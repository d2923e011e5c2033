"""``GET /v1/models``: what this server serves, self-described."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from bragi.api.deps import ApiKey, Manager
from bragi.backends.protocol import ModelKind
from bragi.models.capabilities import capabilities_of, word_timestamps_of
from bragi.models.manager import ModelManager
from bragi.models.served import ServedModel
from bragi.realtime import partials_mode

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
    languages = getattr(model.engine.capabilities, "languages", None)  # diarizers have none
    return sorted(languages) if languages else None


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
    partials = partials_mode(model, manager)
    if partials is not None:  # live text over /v1/realtime: stream, redecode or none
        description["realtime_partials"] = partials
    if model.kind is ModelKind.STT:  # None: not known until the model loads
        description["word_timestamps"] = word_timestamps_of(model, manager.registry, manager.device)
    if model.error:
        description["error"] = model.error
    if model.state.value == "downloading" and model.progress is not None:
        description["progress"] = model.progress_text()
    capabilities = capabilities_of(model, manager.registry)
    if capabilities is not None:  # a TTS model: what it can do, loaded or not
        description |= asdict(capabilities)
    if model.install is not None:  # its engine environment is being installed
        description["progress"] = f"{model.progress_text()}: {model.install.last_line}"
    voices = manager.voices_of(model)
    if voices is not None:
        description["voices"] = [
            {"id": v.id, "language": v.language, "gender": v.gender} for v in voices
        ]
    return description


def describe_alias(name: str, manager: ModelManager) -> dict[str, Any]:
    """An alias (OpenAI's model names) described as the model it really is."""
    alias = manager.aliases()[name]
    return describe_model(manager.get(name), manager) | {
        "id": name,
        "alias_of": alias.model,
        "diarize": alias.diarize,
    }


@router.get("/v1/models")
async def list_models(manager: Manager, _: ApiKey) -> dict[str, Any]:
    data = [describe_model(m, manager) for m in manager.models()]
    data += [describe_alias(name, manager) for name in manager.aliases()]
    return {"object": "list", "data": data}


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, manager: Manager, _: ApiKey) -> dict[str, Any]:
    if model_id in manager.aliases() and model_id not in {m.alias for m in manager.models()}:
        return describe_alias(model_id, manager)
    return describe_model(manager.get(model_id), manager)
