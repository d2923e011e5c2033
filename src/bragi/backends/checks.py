"""Refusing, before any decoding starts, what a speech-to-text model cannot do.

The API calls this before it streams anything, and each engine calls it again on entry,
so the CLI and direct users of an engine get the same clear 400 instead of a model
silently doing something else (Whisper switches an English-only model to English).
"""

from __future__ import annotations

from bragi.backends.protocol import SttCapabilities, TranscribeOptions
from bragi.errors import UnsupportedCapabilityError
from bragi.languages import language_code

__all__ = ["check_transcription"]


def check_transcription(
    options: TranscribeOptions, capabilities: SttCapabilities, model: str
) -> str | None:
    """Raise UnsupportedCapabilityError for a translation, a language or word timestamps
    that ``model`` (a phrase such as "Model `whisper-1`") cannot do; return the request's
    ISO 639-1 language code. ``capabilities.languages`` None or empty means "any"."""
    english_only = capabilities.languages == frozenset({"en"})
    if options.task == "translate" and not capabilities.translate:
        reason = " (it is English-only)" if english_only else ""
        raise UnsupportedCapabilityError(
            f"{model} cannot translate{reason}; use a multilingual Whisper model.", param="model"
        )
    code = language_code(options.language) if options.language else None
    languages = capabilities.languages
    if options.language and languages and code not in languages:
        supported = ", ".join(sorted(languages))
        if english_only:
            supported += " (the model is English-only)"
        raise UnsupportedCapabilityError(
            f"{model} does not support language {options.language!r}; supported: {supported}.",
            param="language",
        )
    if options.word_timestamps and not capabilities.word_timestamps:
        raise UnsupportedCapabilityError(
            f"{model} gives no word timestamps; ask for segments only.",
            param="timestamp_granularities",
        )
    return code
