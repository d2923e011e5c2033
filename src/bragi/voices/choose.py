"""Which voice a speech request gets: a built-in one, else a cloned one.

Shared by ``/v1/audio/speech`` and ``bragi speak``. Built-in voices come first (an engine
voice, a configured mapping, an OpenAI name), so a stored voice never changes what an
existing request gets; otherwise a cloned voice by name or id, on any model whose engine
can clone, whatever model it was made for (a recording is not tied to one engine).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from bragi.backends.protocol import TextToSpeech, VoiceReference
from bragi.config import VoiceMapping
from bragi.errors import UnknownVoiceError
from bragi.models.openai_voices import cannot_clone, resolve_voice
from bragi.voices.store import StoredVoice, VoiceStore

__all__ = ["choose_voice"]


def choose_voice(
    requested: str,
    alias: str,
    engine: TextToSpeech,
    mappings: Mapping[str, VoiceMapping],
    store: VoiceStore,
    cloning_models: Callable[[], Sequence[str]],
    usable: Callable[[StoredVoice], bool] = lambda voice: True,
) -> tuple[str, VoiceReference | None]:
    """The engine's voice and, for a cloned voice, its reference recording (read from
    disk or the store's cache: call it off the event loop). ``cloning_models`` names the
    models that can clone, for the 400 a model that cannot gives; a cloned voice the
    caller may not use (``usable``) is as unknown as one that does not exist."""
    try:
        return resolve_voice(requested, alias, engine.voices(), mappings), None
    except UnknownVoiceError as exc:
        cloned = store.find(requested)
        if cloned is None or not usable(cloned):
            if engine.capabilities.cloning:  # say how to make one
                raise UnknownVoiceError(
                    f"{exc.message} Model `{alias}` speaks in cloned voices: clone one with "
                    "POST /v1/audio/voices (or `bragi voices add`).",
                    param="voice",
                ) from None
            raise
    if not engine.capabilities.cloning:
        raise cannot_clone(alias, cloned.name, cloning_models())
    return cloned.name, store.reference(cloned)
