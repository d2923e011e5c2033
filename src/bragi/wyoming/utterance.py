"""One spoken command as it arrives: ``audio-start``, ``audio-chunk``* and ``audio-stop``.

Home Assistant sends about a hundred 10 ms chunks a second, so a chunk is only appended
to a buffer; the PCM becomes float32 mono once, at ``audio-stop``. The buffer is bounded
like an HTTP upload: at most ``upload_limit_mb`` of PCM and ``max_audio_minutes``.
"""

from __future__ import annotations

import numpy as np

from bragi.audio.types import Audio, Samples
from bragi.config import Settings
from bragi.errors import AudioTooLongError, PayloadTooLargeError, ProtocolError
from bragi.wyoming.events import AudioFormat, ChunkFormat

__all__ = ["Utterance", "pcm_to_float"]

#: Full scale per width; 24-bit samples are read into the top bytes of an int32.
_SCALE = {2: 32768.0, 3: 2147483648.0, 4: 2147483648.0}


def pcm_to_float(pcm: bytes, width: int, channels: int) -> Samples:
    """Signed little-endian PCM as float32 mono in [-1, 1) (channels averaged); a
    trailing partial frame is dropped."""
    frame = width * channels
    usable = len(pcm) - len(pcm) % frame
    raw = np.frombuffer(pcm, dtype=np.uint8, count=usable)
    if width == 3:  # no numpy dtype: widen each sample to the top of an int32
        padded = np.zeros((usable // 3, 4), dtype=np.uint8)
        padded[:, 1:] = raw.reshape(-1, 3)
        ints = padded.view("<i4").reshape(-1)
    else:
        ints = raw.view("<i2" if width == 2 else "<i4")
    samples = ints.astype(np.float32) / np.float32(_SCALE[width])
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(samples, dtype=np.float32)


class Utterance:
    """The PCM of one command, in the format its ``audio-start`` declared."""

    def __init__(self, audio_format: AudioFormat, settings: Settings):
        self.format = audio_format
        self._pcm = bytearray()
        self._max_bytes = settings.upload_limit_bytes
        self._max_seconds = settings.max_audio_minutes * 60

    def add(self, chunk_format: ChunkFormat, payload: bytes) -> None:
        """Append a chunk; a chunk in another format than the start's is refused."""
        declared = chunk_format.model_dump(exclude_none=True)
        expected = self.format.model_dump()
        if any(expected[key] != value for key, value in declared.items()):
            raise ProtocolError(
                f"audio-chunk format {declared} differs from its audio-start's {expected}.",
                param="audio-chunk",
            )
        if len(self._pcm) + len(payload) > self._max_bytes:
            raise PayloadTooLargeError(
                f"The audio is over the limit of {self._max_bytes} bytes (upload_limit_mb)."
            )
        self._pcm += payload
        if self.seconds > self._max_seconds:
            raise AudioTooLongError(
                f"The audio is longer than {self._max_seconds / 60:g} minutes (max_audio_minutes)."
            )

    @property
    def seconds(self) -> float:
        return len(self._pcm) / self.format.frame_bytes / self.format.rate

    def audio(self) -> Audio:
        """The command as mono float32 at the rate it was sent."""
        samples = pcm_to_float(bytes(self._pcm), self.format.width, self.format.channels)
        return Audio(samples, self.format.rate)
