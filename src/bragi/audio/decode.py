"""Decode uploaded audio with PyAV into mono float32 at the engine's rate.

The upload is read from its file (a spooled temporary file for HTTP uploads), and the
samples go into one array that grows in place and is trimmed at the end: decoding a
long file holds its samples once, never a list of chunks plus their concatenation.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

import av
import av.error
import numpy as np

from bragi.audio.types import Audio, Samples
from bragi.errors import AudioDecodeError, AudioTooLongError, EmptyAudioError

__all__ = ["SILENCE_PEAK", "SUPPORTED_INPUT_FORMATS", "decode_audio", "is_silent"]

#: What OpenAI's transcription endpoint lists; anything FFmpeg reads is accepted.
SUPPORTED_INPUT_FORMATS = (
    "flac",
    "m4a",
    "mp3",
    "mp4",
    "mpeg",
    "mpga",
    "oga",
    "ogg",
    "opus",
    "wav",
    "webm",
)

#: Peak level below which audio counts as silent: 1e-4 is -80 dBFS, under the
#: noise floor of any real recording, so only digital silence counts.
SILENCE_PEAK = 1e-4
_GROWTH = 1.5  # how much the sample array grows when a file runs past its estimate

_INVALID = f"Invalid file format. Supported formats: {list(SUPPORTED_INPUT_FORMATS)}"

# What PyAV raises on hostile input: FFmpeg's own errors, plus plain Python ones
# from its wrappers (bad metadata, odd layouts, absurd header values).
_AV_ERRORS: tuple[type[Exception], ...] = (
    av.error.FFmpegError,
    EOFError,
    ValueError,
    IndexError,
    OverflowError,
    RuntimeError,
)


def decode_audio(
    data: bytes | BinaryIO, sample_rate: int, max_seconds: float | None = None
) -> Audio:
    """Decode ``data`` (bytes, or a seekable binary file; any container and codec FFmpeg
    reads) to mono at ``sample_rate``.

    Raises :class:`EmptyAudioError` for a file of no bytes and :class:`AudioDecodeError`
    for anything that is not decodable audio. Valid audio with no samples, or silent
    (:func:`is_silent`), is returned as it is: callers decide what silence means. A file
    cut short decodes as far as it goes, as ffmpeg does. ``max_seconds`` bounds the
    decoded length (a small, highly compressed upload can hold hours of audio).
    """
    if sample_rate <= 0:
        raise ValueError("sample_rate must be positive")
    source = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
    if source.seek(0, os.SEEK_END) == 0:
        raise EmptyAudioError("The audio file is empty.", param="file")
    source.seek(0)
    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except _AV_ERRORS as exc:
        raise AudioDecodeError(_INVALID, param="file") from exc
    try:
        if not container.streams.audio:
            raise AudioDecodeError(
                f"The file has no audio stream. Supported formats: {list(SUPPORTED_INPUT_FORMATS)}",
                param="file",
            )
        limit = None if max_seconds is None else int(max_seconds * sample_rate)
        samples, failed = _decode_stream(container, sample_rate, limit)
    finally:
        container.close()

    if not len(samples) and failed:
        raise AudioDecodeError(_INVALID, param="file")
    return Audio(_normalize(samples), sample_rate)


def is_silent(audio: Audio) -> bool:
    """Whether ``audio`` holds no samples, or none above -80 dBFS (digital silence)."""
    samples = audio.samples
    return not len(samples) or float(max(samples.max(), -samples.min())) < SILENCE_PEAK


def _estimate(container: av.container.InputContainer, rate: int, limit: int | None) -> int:
    """Samples to make room for at first: the container's duration, when it has one."""
    duration = container.duration  # microseconds (AV_TIME_BASE), None when unknown
    guess = int(duration * rate / 1_000_000) + rate if duration else 30 * rate
    return min(guess, limit + rate) if limit is not None else guess


def _decode_stream(
    container: av.container.InputContainer, rate: int, limit: int | None
) -> tuple[Samples, bool]:
    """The decoded samples, and whether any packet failed to demux or decode."""
    stream = container.streams.audio[0]
    mono = _MonoResampler(rate, _estimate(container, rate, limit))
    failed = False
    demuxer = container.demux(stream)
    while True:
        packet: av.Packet[av.AudioStream] | None
        try:
            packet = next(demuxer)
        except StopIteration:
            break
        except _AV_ERRORS:
            # Cut short or corrupt from here on: flush the decoder and stop.
            failed = True
            packet = None
        try:
            frames = stream.decode(packet)
        except _AV_ERRORS:
            # A corrupt packet: skip it and go on, as ffmpeg does.
            failed = True
            frames = []
        for frame in frames:
            failed |= not mono.push(frame)
        if limit is not None and mono.size > limit:
            raise AudioTooLongError(
                f"The audio is longer than the server's limit of {limit / rate / 60:.0f} "
                "minutes (max_audio_minutes).",
                param="file",
            )
        if packet is None:
            break
    failed |= not mono.flush()
    return mono.samples(), failed


class _MonoResampler:
    """Downmix, convert and resample decoded frames to mono float32 in one pass, into one
    array that grows in place (``ndarray.resize``: a realloc, not a copy of the samples
    so far) and is trimmed to size at the end."""

    def __init__(self, rate: int, capacity: int) -> None:
        self.rate = rate
        self.size = 0
        self._buffer: Samples = np.empty(max(1, capacity), dtype=np.float32)
        self._resampler: av.AudioResampler | None = None
        self._setup: tuple[str, str, int] | None = None

    def push(self, frame: av.AudioFrame) -> bool:
        setup = (frame.format.name, frame.layout.name, frame.sample_rate)
        if setup != self._setup:
            # Rate or layout changed mid-stream (chained Ogg, some AAC): drain the
            # old resampler and start one that matches.
            if not self.flush():
                return False
            # rematrix_maxval=1 makes swresample normalise the downmix (stereo ->
            # 0.5 L + 0.5 R) as ffmpeg does for int output; float output would
            # otherwise sum the channels at +3 dB and exceed full scale.
            self._resampler = av.AudioResampler(
                format="fltp", layout="mono", rate=self.rate, options={"rematrix_maxval": "1"}
            )
            self._setup = setup
        return self._run(frame)

    def flush(self) -> bool:
        ok = self._resampler is None or self._run(None)
        self._resampler = None
        self._setup = None
        return ok

    def _run(self, frame: av.AudioFrame | None) -> bool:
        assert self._resampler is not None
        try:
            frames = self._resampler.resample(frame)
        except _AV_ERRORS:
            return False
        for out in frames:
            plane: Samples = out.to_ndarray()[0]
            if len(plane):
                self._append(plane)
        return True

    def _append(self, plane: Samples) -> None:
        end = self.size + len(plane)
        if end > len(self._buffer):
            # Only this module holds the buffer: no view of it can dangle.
            self._buffer.resize(max(end, int(len(self._buffer) * _GROWTH)), refcheck=False)
        self._buffer[self.size : end] = plane
        self.size = end

    def samples(self) -> Samples:
        """The samples decoded, in the buffer trimmed to them (the buffer is handed over)."""
        self._buffer.resize(self.size, refcheck=False)
        return self._buffer


def _normalize(samples: Samples) -> Samples:
    """Repair NaN/inf and over-range float input in place."""
    if not len(samples):
        return samples
    peak = float(max(samples.max(), -samples.min()))
    if not np.isfinite(peak):
        np.nan_to_num(samples, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
        peak = float(max(samples.max(), -samples.min()))
    if peak > 1.0:
        # Float files and lossy codecs can exceed full scale; scaling keeps the
        # waveform where clipping would distort it.
        samples *= np.float32(1.0 / peak)
    return samples
