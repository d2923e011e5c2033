"""Decode uploaded audio bytes with PyAV into mono float32 at the engine's rate."""

from __future__ import annotations

import io

import av
import av.error
import numpy as np

from bragi.audio.types import Audio, Samples
from bragi.errors import AudioDecodeError, AudioTooLongError, EmptyAudioError

__all__ = ["MIN_INPUT_RATE", "SILENCE_PEAK", "SUPPORTED_INPUT_FORMATS", "decode_audio"]

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
#: noise floor of any real recording, so only digital silence is refused.
SILENCE_PEAK = 1e-4
#: Lowest input sample rate decoded. Below it a header lies: no speech fits under a
#: 500 Hz Nyquist limit, and resampling "1 Hz" to 16 kHz turned a 32 KB upload into
#: half a gigabyte of samples and seconds of CPU before the length limit could stop it.
MIN_INPUT_RATE = 1_000

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


def decode_audio(data: bytes, sample_rate: int, max_seconds: float | None = None) -> Audio:
    """Decode ``data`` (any container and codec FFmpeg reads) to mono at ``sample_rate``.

    Raises :class:`EmptyAudioError` for empty, zero-length or silent audio and
    :class:`AudioDecodeError` for anything that is not decodable audio. A file cut
    short decodes as far as it goes, as ffmpeg does. ``max_seconds`` bounds the decoded
    length (a small, highly compressed upload can hold hours of audio).
    """
    if sample_rate <= 0:
        raise ValueError("sample_rate must be positive")
    if not data:
        raise EmptyAudioError("The audio file is empty.", param="file")
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except _AV_ERRORS as exc:
        raise AudioDecodeError(_INVALID, param="file") from exc
    try:
        if not container.streams.audio:
            raise AudioDecodeError(
                f"The file has no audio stream. Supported formats: {list(SUPPORTED_INPUT_FORMATS)}",
                param="file",
            )
        limit = None if max_seconds is None else int(max_seconds * sample_rate)
        chunks, failed = _decode_stream(container, sample_rate, limit)
    finally:
        container.close()

    if not chunks:
        if failed:
            raise AudioDecodeError(_INVALID, param="file")
        raise EmptyAudioError("The audio contains no samples.", param="file")
    # One concatenate (also a fresh, writable array for the in-place fixes below).
    samples: Samples = np.concatenate(chunks)
    return Audio(_normalize(samples), sample_rate)


def _decode_stream(
    container: av.container.InputContainer, rate: int, limit: int | None
) -> tuple[list[Samples], bool]:
    """The decoded chunks, and whether any packet failed to demux or decode."""
    stream = container.streams.audio[0]
    mono = _MonoResampler(rate)
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
        if limit is not None and mono.samples > limit:
            raise AudioTooLongError(
                f"The audio is longer than the server's limit of {limit / rate / 60:.0f} "
                "minutes (max_audio_minutes).",
                param="file",
            )
        if packet is None:
            break
    failed |= not mono.flush()
    return mono.chunks, failed


class _MonoResampler:
    """Downmix, convert and resample decoded frames to mono float32 in one pass."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.chunks: list[Samples] = []
        self.samples = 0
        self._resampler: av.AudioResampler | None = None
        self._setup: tuple[str, str, int] | None = None

    def push(self, frame: av.AudioFrame) -> bool:
        if frame.sample_rate < MIN_INPUT_RATE:
            raise AudioDecodeError(
                f"The audio's sample rate ({frame.sample_rate} Hz) is below "
                f"{MIN_INPUT_RATE} Hz: too low to hold speech.",
                param="file",
            )
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
                self.chunks.append(plane)
                self.samples += len(plane)
        return True


def _normalize(samples: Samples) -> Samples:
    """Refuse silence; repair NaN/inf and over-range float input in place."""
    peak = float(max(samples.max(), -samples.min()))
    if not np.isfinite(peak):
        np.nan_to_num(samples, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
        peak = float(max(samples.max(), -samples.min()))
    if peak < SILENCE_PEAK:
        raise EmptyAudioError(
            "The audio is silent: its peak level is below -80 dBFS.", param="file"
        )
    if peak > 1.0:
        # Float files and lossy codecs can exceed full scale; scaling keeps the
        # waveform where clipping would distort it.
        samples *= np.float32(1.0 / peak)
        np.clip(samples, -1.0, 1.0, out=samples)  # the float32 product can round past 1
    return samples
