"""What each served model can do, known before it loads.

Text to speech: the loaded engine says it (``TtsCapabilities``); before that its backend
reads it from the files (``capabilities_in``), and before the files are there its catalog
entry says it. ``/v1/models`` shows it, and the 400 for a cloned voice on a model that
cannot clone names every model that can, loaded or not.

Speech to text: whether a model gives word times, from the loaded engine, else from its
backend (``word_timestamps_in``), so a client asks for words only where they exist.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import fields

from bragi.backends.protocol import (
    CapabilityListing,
    Device,
    ModelCapabilities,
    ModelKind,
    SpeechToText,
    TextToSpeech,
    WordTimestampListing,
)
from bragi.backends.registry import BackendRegistry
from bragi.models.served import ServedModel

__all__ = ["capabilities_of", "models_that_can", "word_timestamps_of"]

log = logging.getLogger(__name__)
_NAMES = tuple(f.name for f in fields(ModelCapabilities))


def capabilities_of(model: ServedModel, registry: BackendRegistry) -> ModelCapabilities | None:
    """A TTS model's capabilities (None for a speech-to-text model, or one not known yet)."""
    if model.kind is not ModelKind.TTS:
        return None
    if isinstance(model.engine, TextToSpeech):
        loaded = model.engine.capabilities
        return ModelCapabilities(**{name: bool(getattr(loaded, name, False)) for name in _NAMES})
    name = model.backend_name
    backend = model.backend or (registry.get(name) if name and name in registry else None)
    if isinstance(backend, CapabilityListing) and model.model_dir is not None:
        try:
            return backend.capabilities_in(model.model_dir, model.options)
        except Exception:  # a broken model says so when it loads; here it just cannot
            log.debug("capabilities of %s", model.alias, exc_info=True)
    entry = model.source.catalog
    if entry is not None:
        return ModelCapabilities(**{name: True for name in entry.capabilities})
    return ModelCapabilities()


def word_timestamps_of(
    model: ServedModel, registry: BackendRegistry, device: Device
) -> bool | None:
    """Whether a speech-to-text model gives word times; None for other kinds, and where
    its backend cannot say before loading (a plug-in without ``word_timestamps_in``)."""
    if model.kind is not ModelKind.STT:
        return None
    if isinstance(model.engine, SpeechToText):
        return model.engine.capabilities.word_timestamps
    name = model.backend_name
    backend = model.backend or (registry.get(name) if name and name in registry else None)
    if not isinstance(backend, WordTimestampListing):
        return None
    try:
        return backend.word_timestamps_in(model.model_dir, device, model.options)
    except Exception:  # a broken model says so when it loads; here it just cannot
        log.debug("word timestamps of %s", model.alias, exc_info=True)
        return None


def models_that_can(
    models: Iterable[ServedModel], capability: str, registry: BackendRegistry
) -> list[str]:
    """The aliases of the models that have ``capability`` (a ModelCapabilities field)."""
    if capability not in _NAMES:
        raise ValueError(f"no capability named {capability!r}")
    able = []
    for model in models:
        capabilities = capabilities_of(model, registry)
        if capabilities is not None and getattr(capabilities, capability):
            able.append(model.alias)
    return able
