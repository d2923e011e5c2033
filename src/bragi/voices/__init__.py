"""Cloned voices: reference recordings checked on upload and kept in the data dir."""

from bragi.voices.reference import (
    ID_PREFIX,
    STORED_SAMPLE_RATE,
    ReferenceLimits,
    check_name,
    decode_reference,
)
from bragi.voices.store import StoredVoice, StoreProblem, VoiceStore

__all__ = [
    "ID_PREFIX",
    "STORED_SAMPLE_RATE",
    "ReferenceLimits",
    "StoreProblem",
    "StoredVoice",
    "VoiceStore",
    "check_name",
    "decode_reference",
]
