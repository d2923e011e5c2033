"""Real human speech from the moonshine-voice package, and word error rate."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jiwer

TWO_CITIES = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was "
    "the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it "
    "was the season of Light, it was the season of Darkness, it was the spring of hope, it was "
    "the winter of despair, we had everything before us, we had nothing before us, we were all "
    "going direct to Heaven, we were all going direct the other way - in short, the period was "
    "so far like the present period, that some of its noisiest authorities insisted on its "
    "being received, for good or for evil, in the superlative degree of comparison only."
)
BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."


@dataclass(frozen=True)
class SpeechSample:
    path: Path
    text: str
    duration: float


def speech_samples() -> dict[str, SpeechSample]:
    assets = Path(str(resources.files("moonshine_voice") / "assets"))
    return {
        "beckett": SpeechSample(assets / "beckett.wav", BECKETT, 10.0),
        "two_cities": SpeechSample(assets / "two_cities.wav", TWO_CITIES, 44.4),
    }


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", text.lower())).strip()


def word_error_rate(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalize(reference), normalize(hypothesis)))


def reencode(
    path: Path, container: str, codec: str, *, rate: int | None = None, channels: int = 1
) -> bytes:
    """``path`` re-encoded with PyAV (e.g. ``("mp3", "libmp3lame")``, ``("ogg", "libopus")``)."""
    import io

    import av
    import numpy as np

    with av.open(str(path)) as source:
        stream = source.streams.audio[0]
        in_rate = stream.rate
        frames = [f.to_ndarray().reshape(-1) for f in source.decode(stream)]
    samples = np.concatenate(frames).astype(np.float32)
    if samples.dtype.kind != "f" or np.abs(samples).max() > 1.5:
        samples = samples / 32768.0
    out_rate = rate or in_rate
    layout = "stereo" if channels == 2 else "mono"
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        out = output.add_stream(codec, rate=out_rate, layout=layout)
        planar = np.repeat(samples[None, :], channels, axis=0)
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate = in_rate
        resampler = av.AudioResampler(
            format=out.codec_context.format.name,
            layout=layout,
            rate=out_rate,
            frame_size=out.codec_context.frame_size or None,
        )
        for resampled in resampler.resample(frame) + resampler.resample(None):
            for packet in out.encode(resampled):
                output.mux(packet)
        for packet in out.encode(None):
            output.mux(packet)
    return buffer.getvalue()


def espeak(text: str, voice: str) -> bytes:
    """Speech from the espeak-ng program (a Debian package `make test` installs)."""
    import subprocess

    result = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "150", "--stdout", text],
        check=True,
        capture_output=True,
    )
    return result.stdout
