"""Audio a Realtime client appends, turned into 16 kHz float32 samples as it arrives.

OpenAI's formats: ``audio/pcm`` (16-bit signed little-endian mono at 24 kHz; Bragi also
takes the other common rates as an extension), ``audio/pcmu`` and ``audio/pcma``
(G.711 μ-law and A-law at 8 kHz). G.711 is decoded with a 256-entry table (Python 3.13
removed ``audioop``); the tables follow ITU-T G.711 as Sun's reference ``g711.c`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from bragi.audio.resample import StreamResampler
from bragi.audio.types import Samples

__all__ = [
    "PCM_RATES",
    "SAMPLE_RATE",
    "AudioDecoder",
    "FormatType",
    "InputFormat",
    "alaw_table",
    "ulaw_table",
]

SAMPLE_RATE = 16_000  # what the VAD and every engine but a few Vosk models take
G711_RATE = 8_000
#: ``audio/pcm`` rates accepted; OpenAI's clients type the rate as exactly 24000.
PCM_RATES = (8_000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)
FormatType = Literal["audio/pcm", "audio/pcmu", "audio/pcma"]


@dataclass(frozen=True, slots=True)
class InputFormat:
    type: FormatType = "audio/pcm"
    rate: int = 24_000

    @property
    def bytes_per_second(self) -> int:
        return self.rate * (2 if self.type == "audio/pcm" else 1)


def ulaw_table() -> Samples:
    """Each μ-law byte's sample value, scaled to [-1, 1)."""
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent, mantissa = (code >> 4) & 0x07, code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    values = np.where(code & 0x80, -magnitude, magnitude)
    return (values / 32768.0).astype(np.float32)


def alaw_table() -> Samples:
    """Each A-law byte's sample value, scaled to [-1, 1)."""
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (code >> 4) & 0x07, code & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    values = np.where(code & 0x80, magnitude, -magnitude)
    return (values / 32768.0).astype(np.float32)


_TABLES = {"audio/pcmu": ulaw_table(), "audio/pcma": alaw_table()}


class AudioDecoder:
    """Bytes in ``fmt`` ─▶ 16 kHz float32, keeping state across appends: an odd byte of
    16-bit PCM waits for the next append, and the resampler filters across them."""

    def __init__(self, fmt: InputFormat) -> None:
        self.format = fmt
        self._carry = b""
        self._resampler = StreamResampler(fmt.rate, SAMPLE_RATE)

    def decode(self, data: bytes) -> Samples:
        if self.format.type == "audio/pcm":
            data = self._carry + data
            usable = len(data) - len(data) % 2
            self._carry = data[usable:]
            samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
        else:
            samples = _TABLES[self.format.type][np.frombuffer(data, dtype=np.uint8)]
        return self._resampler.process(samples)

    def flush(self) -> Samples:
        """The samples the resampler still holds (at a commit: the audio's last ~20 ms)."""
        self._carry = b""
        return self._resampler.flush()

    def seconds(self, byte_count: int) -> float:
        """How long ``byte_count`` bytes of this format play."""
        return byte_count / self.format.bytes_per_second
