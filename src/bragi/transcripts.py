"""Transcription, shared by every front end (the HTTP API, the command line, live
protocols): starting an engine on decoded audio.

Silence is not an error: like OpenAI's endpoint, audio with no samples or only digital
silence gets an empty transcript (the engine is not even started), so a dictation
client that sends a quiet moment gets text ``""`` instead of an exception.
"""

from __future__ import annotations

from collections.abc import Iterator

from bragi.audio.decode import is_silent
from bragi.audio.types import Audio
from bragi.backends.protocol import Segment, SpeechToText, TranscribeOptions, TranscriptionInfo

__all__ = ["start_transcription"]


def start_transcription(
    engine: SpeechToText, audio: Audio, options: TranscribeOptions
) -> tuple[Iterator[Segment], TranscriptionInfo]:
    """The engine's lazy segments and what it found, or none for silent audio."""
    if is_silent(audio):
        language = "en" if options.task == "translate" else options.language or "en"
        return iter(()), TranscriptionInfo(language=language, duration=audio.duration)
    return engine.transcribe(audio, options)
