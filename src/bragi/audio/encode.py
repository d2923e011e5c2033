"""The six OpenAI speech output formats, encoded incrementally with PyAV.

Output is always mono at 24 kHz, as OpenAI's is. mp3, opus (in Ogg), aac (ADTS)
and flac go through FFmpeg's encoders and muxers writing into memory; wav and pcm
are raw s16le, wav behind a 44-byte header whose sizes say "unknown" (0xFFFFFFFF)
because a stream cannot know its length up front.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass, field
from fractions import Fraction

import av
import av.error
import numpy as np
import numpy.typing as npt

from bragi.audio.resample import StreamResampler
from bragi.audio.types import Audio, Samples
from bragi.errors import InvalidRequestError

__all__ = [
    "CONTENT_TYPES",
    "OUTPUT_FORMATS",
    "OUTPUT_SAMPLE_RATE",
    "StreamEncoder",
    "encode_audio",
    "to_pcm16",
]

OUTPUT_SAMPLE_RATE = 24_000

#: Media type of each ``response_format``, as the OpenAI API labels them.
CONTENT_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
OUTPUT_FORMATS = tuple(CONTENT_TYPES)


@dataclass(frozen=True, slots=True)
class _Codec:
    container: str
    codec: str
    sample_format: str  # one the encoder takes natively, so PyAV converts nothing
    bit_rate: int | None = None
    codec_options: dict[str, str] = field(default_factory=dict)
    container_options: dict[str, str] = field(default_factory=dict)


# Speed settings were measured on 44 s of speech (single core): lame -q 7 takes
# 165 ms instead of 280 ms, libopus complexity 5 takes 90 ms instead of 340 ms, the
# "fast" AAC coder 87 ms instead of 190 ms, with no audible loss for speech.
_CODECS: dict[str, _Codec] = {
    "mp3": _Codec(
        "mp3",
        "libmp3lame",
        "fltp",
        64_000,
        {"compression_level": "7"},
        # No ID3 tag: the stream is bare MPEG frames, playable from any byte offset.
        {"id3v2_version": "0"},
    ),
    "opus": _Codec(
        "ogg",
        "libopus",
        "flt",
        32_000,
        {"compression_level": "5"},
        # Ogg holds packets until a page spans page_duration (default 1 s); 200 ms
        # pages cut streaming latency for about 1.5 kbit/s of page headers.
        {"page_duration": "200000"},
    ),
    "aac": _Codec("adts", "aac", "fltp", 64_000, {"aac_coder": "fast"}),
    "flac": _Codec("flac", "flac", "s16"),
}


class _Sink:
    """Write-only in-memory file for PyAV; no ``seek``, so muxers stream."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _clip(samples: Samples) -> Samples:
    """A clipped copy in [-1, 1]; NaN (a misbehaving vocoder) becomes silence."""
    out = np.clip(samples, -1.0, 1.0)
    return np.nan_to_num(out, copy=False)


def to_pcm16(samples: Samples) -> npt.NDArray[np.int16]:
    """Little-endian int16 samples: clipped, scaled by 32768 and rounded, so 16-bit audio
    decoded to float (``n / 32768``) comes back exactly; NaN becomes silence."""
    scaled = np.rint(_clip(samples) * 32768.0)
    pcm: npt.NDArray[np.int16] = np.clip(scaled, -32768, 32767).astype("<i2")
    return pcm


def _wav_header(sample_rate: int, data_bytes: int | None = None) -> bytes:
    """A 44-byte PCM s16le mono WAVE header; sizes 0xFFFFFFFF when unknown."""
    riff = 0xFFFFFFFF if data_bytes is None else min(36 + data_bytes, 0xFFFFFFFF)
    data = 0xFFFFFFFF if data_bytes is None else min(data_bytes, 0xFFFFFFFF)
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff,
        b"WAVE",
        b"fmt ",
        16,  # fmt chunk size
        1,  # PCM
        1,  # channels
        sample_rate,
        sample_rate * 2,  # byte rate
        2,  # block align
        16,  # bits per sample
        b"data",
        data,
    )


class StreamEncoder:
    """Encode a stream of float32 chunks into one ``fmt`` file, piece by piece.

    Chunks arrive at ``sample_rate`` and are resampled to 24 kHz when that differs.
    :meth:`encode` returns the bytes ready so far (codecs and Ogg pages hold back a
    few milliseconds); :meth:`finish` flushes the rest and ends the file.
    """

    def __init__(self, fmt: str, sample_rate: int = OUTPUT_SAMPLE_RATE) -> None:
        if fmt not in CONTENT_TYPES:
            raise InvalidRequestError(
                f"Unsupported response_format {fmt!r}. Supported: {list(OUTPUT_FORMATS)}",
                param="response_format",
            )
        self.format = fmt
        self.content_type = CONTENT_TYPES[fmt]
        self._resampler = (
            StreamResampler(sample_rate, OUTPUT_SAMPLE_RATE)
            if sample_rate != OUTPUT_SAMPLE_RATE
            else None
        )
        self._header_sent = False
        self._finished = False
        self._sink = _Sink()
        self._container: av.container.OutputContainer | None = None
        self._stream: av.AudioStream | None = None
        self._pts = 0
        spec = _CODECS.get(fmt)
        self._pcm = spec is None  # wav and pcm: raw s16le, no codec needed
        if spec is not None:
            self._open(spec)

    def _open(self, spec: _Codec) -> None:
        self._container = av.open(
            self._sink, mode="w", format=spec.container, options=spec.container_options
        )
        stream = self._container.add_stream(
            spec.codec, rate=OUTPUT_SAMPLE_RATE, options=spec.codec_options, layout="mono"
        )
        if not isinstance(stream, av.AudioStream):  # narrows the type; always true
            raise TypeError(f"{spec.codec} is not an audio codec")
        stream.codec_context.format = spec.sample_format
        if spec.bit_rate is not None:
            stream.codec_context.bit_rate = spec.bit_rate
        self._stream = stream

    def encode(self, samples: Samples) -> bytes:
        """Add a chunk; return the encoded bytes that are ready now (maybe none)."""
        if self._finished:
            raise RuntimeError("StreamEncoder.encode() called after finish()")
        chunk = np.asarray(samples, dtype=np.float32)
        if chunk.ndim != 1:
            raise ValueError("samples must be a 1-D array")
        if self._resampler is not None:
            chunk = self._resampler.process(chunk)
        return self._write(chunk)

    def finish(self) -> bytes:
        """Flush everything held back and end the file; the encoder is done after this."""
        if self._finished:
            return b""
        tail = b""
        if self._resampler is not None:
            tail = self._write(self._resampler.flush())
        self._finished = True
        if self._pcm:
            return tail + self._pcm_header()
        assert self._stream is not None and self._container is not None
        self._container.mux(self._stream.encode(None))
        self._container.close()
        self._container = self._stream = None
        return tail + self._sink.drain()

    def close(self) -> None:
        """Release the encoder; safe after :meth:`finish` and when abandoning a stream."""
        self._finished = True
        if self._container is not None:
            # Called from finally blocks: a codec error here must not mask the first.
            with contextlib.suppress(av.error.FFmpegError):
                self._container.close()
            self._container = self._stream = None
            self._sink.drain()

    def _write(self, chunk: Samples) -> bytes:
        if self._pcm:
            return self._pcm_header() + to_pcm16(chunk).tobytes() if len(chunk) else b""
        assert self._stream is not None and self._container is not None
        if len(chunk):
            if self._stream.codec_context.format.name == "s16":
                data: npt.NDArray[np.int16] | Samples = to_pcm16(chunk)
            else:
                # Clip the float codecs too, so overshoot sounds the same in every format.
                data = _clip(chunk)
            frame = av.AudioFrame.from_ndarray(
                data.reshape(1, -1), format=self._stream.codec_context.format.name, layout="mono"
            )
            frame.sample_rate = OUTPUT_SAMPLE_RATE
            frame.time_base = Fraction(1, OUTPUT_SAMPLE_RATE)
            frame.pts = self._pts
            self._pts += len(chunk)
            self._container.mux(self._stream.encode(frame))
        return self._sink.drain()

    def _pcm_header(self) -> bytes:
        """The wav header, once, before the first sample (pcm has none)."""
        if self._header_sent:
            return b""
        self._header_sent = True
        return _wav_header(OUTPUT_SAMPLE_RATE) if self.format == "wav" else b""


def encode_audio(audio: Audio, fmt: str) -> bytes:
    """Encode a whole clip to ``fmt`` (mono, 24 kHz)."""
    encoder = StreamEncoder(fmt, audio.sample_rate)
    out = encoder.encode(audio.samples) + encoder.finish()
    if fmt == "wav":
        # The whole file is here, so the header can carry the real sizes.
        out = _wav_header(OUTPUT_SAMPLE_RATE, len(out) - 44) + out[44:]
    return out
