"""How a model gives text while the person is still speaking.

- ``stream``: the engine decodes as audio arrives (Vosk); partial text costs nothing extra.
- ``redecode``: the growing turn is decoded again at an interval (every other in-process
  engine); the final text is still one full decode of the turn.
- ``none``: engines in worker processes (torch engines: too slow to decode twice) and
  servers with ``realtime.partials: false`` send one delta per segment after the turn.
"""

from __future__ import annotations

from typing import Literal

from bragi.backends.protocol import Backend, ModelKind
from bragi.errors import BragiError
from bragi.models.manager import ModelManager
from bragi.models.served import ServedModel
from bragi.runners import runs_in_worker

__all__ = ["PartialsMode", "has_free_slot", "partials_mode"]

PartialsMode = Literal["stream", "redecode", "none"]


def _backend(model: ServedModel, manager: ModelManager) -> Backend | None:
    if model.backend is not None:
        return model.backend
    name = model.backend_name
    if name is None or name not in manager.registry:
        return None
    return manager.registry.get(name)


def partials_mode(model: ServedModel, manager: ModelManager) -> PartialsMode | None:
    """The model's mode; None for text-to-speech models and unknown engines."""
    backend = _backend(model, manager)
    if backend is None or backend.kind is not ModelKind.STT:
        return None
    if not manager.settings.realtime.partials or runs_in_worker(backend, model.config.runner):
        return "none"
    return "stream" if getattr(backend, "streaming", False) else "redecode"


def has_free_slot(manager: ModelManager, alias: str) -> bool:
    """Whether ``alias`` would admit one more decode now without queueing (a partial
    decode is skipped rather than queued, so it never delays anyone's final text)."""
    try:
        model = manager.get(alias)
    except BragiError:
        return False
    limit = model.config.max_concurrency or manager.settings.max_concurrency
    return model.running < limit and model.waiting == 0
