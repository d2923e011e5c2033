"""What every built-in backend says about its models without loading one."""

from __future__ import annotations

from bragi.backends.protocol import ModelKind, WordTimestampListing
from bragi.backends.registry import BackendRegistry


def test_every_speech_to_text_backend_says_whether_it_times_words() -> None:
    """So /v1/models has a word_timestamps answer for every built-in engine before it
    loads (each engine's tests check the answer against its loaded engine)."""
    stt = [b for b in BackendRegistry.from_entry_points() if b.kind is ModelKind.STT]
    assert {b.name for b in stt} >= {"faster-whisper", "moonshine", "paraformer", "parakeet"}
    silent = [b.name for b in stt if not isinstance(b, WordTimestampListing)]
    assert silent == []
