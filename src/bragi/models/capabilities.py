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
from dataclasses import fields, replace

from bragi.backends.protocol import (
    Backend,
    CapabilityListing,
    Device,
    InstructionListing,
    Instructions,
    ModelCapabilities,
    ModelKind,
    SpeechToText,
    TextToSpeech,
    WordTimestampListing,
)
from bragi.backends.registry import BackendRegistry
from bragi.models.served import ServedModel

__all__ = ["capabilities_of", "has", "models_that_can", "word_timestamps_of"]

log = logging.getLogger(__name__)
_NAMES = tuple(f.name for f in fields(ModelCapabilities))


def capabilities_of(model: ServedModel, registry: BackendRegistry) -> ModelCapabilities | None:
    """A TTS model's capabilities (None for a speech-to-text model, or one not known yet)."""
    if model.kind is not ModelKind.TTS:
        return None
    if isinstance(model.engine, TextToSpeech):
        loaded = model.engine.capabilities
        return ModelCapabilities(cloning=loaded.cloning, instructions=loaded.instructions)
    name = model.backend_name
    backend = model.backend or (registry.get(name) if name and name in registry else None)
    found = ModelCapabilities()
    if isinstance(backend, CapabilityListing) and model.model_dir is not None:
        try:
            found = backend.capabilities_in(model.model_dir, model.options)
        except Exception:  # a broken model says so when it loads; here it just cannot
            log.debug("capabilities of %s", model.alias, exc_info=True)
    elif model.source.catalog is not None:
        found = ModelCapabilities(cloning="cloning" in model.source.catalog.capabilities)
    return replace(found, instructions=_instructions_in(model, backend, found))


def _instructions_in(
    model: ServedModel, backend: Backend | None, found: ModelCapabilities
) -> Instructions:
    """What the model does with ``instructions``, from its files where its backend can
    tell (Qwen3-TTS: by variant and size), else what was found."""
    if not isinstance(backend, InstructionListing) or model.model_dir is None:
        return found.instructions
    try:
        return backend.instructions_in(model.model_dir, model.options)
    except Exception:  # as above
        log.debug("instructions of %s", model.alias, exc_info=True)
        return found.instructions


def has(capabilities: ModelCapabilities, capability: str) -> bool:
    """Whether ``capability`` (a ModelCapabilities field) is there: true, or for
    ``instructions`` anything but ``none``."""
    return getattr(capabilities, capability) not in (False, "none")


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
        if capabilities is not None and has(capabilities, capability):
            able.append(model.alias)
    return able
