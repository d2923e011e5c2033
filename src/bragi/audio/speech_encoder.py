"""Engine chunks to encoded bytes: optional tempo change, then the output encoder."""

from __future__ import annotations

from bragi.audio.encode import StreamEncoder
from bragi.audio.tempo import stretch
from bragi.audio.types import Audio

__all__ = ["SpeechEncoder"]


class SpeechEncoder:
    """Encodes a TTS engine's chunks as ``fmt``; ``tempo`` != 1 stretches them first
    (for engines that cannot change speed themselves)."""

    def __init__(self, fmt: str, sample_rate: int, tempo: float = 1.0):
        self._encoder = StreamEncoder(fmt, sample_rate)
        self._rate = sample_rate
        self._tempo = tempo
        self.content_type = self._encoder.content_type

    def feed(self, chunk: Audio) -> bytes:
        samples = chunk.samples
        if self._tempo != 1.0:
            samples = stretch(samples, self._rate, self._tempo)
        return self._encoder.encode(samples) if len(samples) else b""

    def finish(self) -> bytes:
        return self._encoder.finish()

    def close(self) -> None:
        self._encoder.close()
