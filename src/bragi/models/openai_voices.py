"""Choosing an engine voice for a request's ``voice``.

A request may name an engine voice (``af_heart``, ``en_US-joe-medium``), an OpenAI voice
(``alloy``, ``nova``, ...) mapped through the config's ``voices:`` section, or an
OpenAI voice with no mapping: then the engine voice of the same name if there is one
(Kokoro has ``af_nova``, ``am_echo``...), else the first voice of the OpenAI voice's
gender, else the engine's first voice. The same request always gets the same voice.
Only when none of these match is a cloned voice looked for (``bragi.voices``), and it
needs a model whose engine can clone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bragi.backends.protocol import Voice
from bragi.config import VoiceMapping
from bragi.errors import UnknownVoiceError, UnsupportedCapabilityError

__all__ = ["OPENAI_VOICES", "cannot_clone", "resolve_voice"]

#: OpenAI's built-in voices and the gender they are commonly heard as.
OPENAI_VOICES: dict[str, str] = {
    "alloy": "female",
    "ash": "male",
    "ballad": "male",
    "coral": "female",
    "echo": "male",
    "fable": "male",
    "onyx": "male",
    "nova": "female",
    "sage": "female",
    "shimmer": "female",
    "verse": "male",
    "marin": "female",
    "cedar": "male",
}


def _same_name(name: str, voices: Sequence[Voice]) -> Voice | None:
    for voice in voices:
        _, _, short = voice.id.partition("_")
        if short == name:
            return voice
    return None


def resolve_voice(
    requested: str,
    alias: str,
    voices: Sequence[Voice],
    mappings: Mapping[str, VoiceMapping],
) -> str:
    """The engine voice id for ``requested`` on model ``alias``."""
    ids = {voice.id for voice in voices}
    if requested in ids:
        return requested
    mapping = mappings.get(requested)
    if mapping is not None and mapping.model == alias and mapping.voice in ids:
        return mapping.voice
    if requested in OPENAI_VOICES and voices:
        match = _same_name(requested, voices)
        if match is None:
            gender = OPENAI_VOICES[requested]
            match = next((v for v in voices if v.gender == gender), voices[0])
        return match.id
    available = ", ".join(sorted(ids)) or "none"
    raise UnknownVoiceError(
        f"Voice '{requested}' is not available on model `{alias}`. "
        f"Available voices: {available} (OpenAI voice names are mapped too).",
        param="voice",
    )


def cannot_clone(alias: str, voice: str, able: Sequence[str]) -> UnsupportedCapabilityError:
    """The 400 for a cloned voice asked of model ``alias``, whose engine cannot clone.

    ``able`` are the models known to clone: those loaded now whose engine can (whether
    an engine clones is known once it is loaded).
    """
    where = (
        f"Models that can: {', '.join(sorted(able))}."
        if able
        else "Use a model whose engine clones voices (XTTS, for one)."
    )
    return UnsupportedCapabilityError(
        f"'{voice}' is a cloned voice, and model `{alias}` cannot speak in cloned voices. " + where,
        param="voice",
    )
