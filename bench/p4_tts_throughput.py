"""P4: TTS throughput.

Seconds of audio per wall second: ``/v1/audio/speech`` (whole body, mp3 and wav) ÷ the
engine library synthesizing the same text to a WAV file in memory (Piper's
``synthesize_wav``; Kokoro's ``create`` and a 16-bit WAV). Each side's audio length is
its own output's (the server's is decoded after the rounds, off the clock). Rounds run
mp3, direct, wav; both ratios use the round's direct number. Target >= 0.9.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bench.assets import TTS_LONG
from bench.client import audio_seconds
from bench.context import Context
from bench.instances import Side
from bench.measure import SETTLE, Measured, cpu_note, interleave
from bench.p3_tts_first_audio import ENGINE_LABELS
from bench.report import Figure, ratio_figure

__all__ = ["FORMATS", "run", "throughput_rounds", "tts_text"]

WRITE_WAV = {"piper": "piper_wav", "kokoro": "kokoro_wav"}
FORMATS = ("mp3", "wav")


def tts_text(ctx: Context, engine: str) -> tuple[str, str]:
    """(text, label): ten sentences; Kokoro (about 10x slower) three; --quick fewer."""
    count = {"piper": 10, "kokoro": 3}[engine]
    if ctx.options.quick:
        count = {"piper": 3, "kokoro": 1}[engine]
    sentences = TTS_LONG[:count]
    return " ".join(sentences), f"{count} sentence{'s' if count > 1 else ''}"


def run(ctx: Context) -> list[Figure]:
    figures = []
    for engine, model in ctx.options.tts_models.items():
        figures.extend(_engine(ctx, engine, model))
    return figures


def throughput_rounds(
    ctx: Context, engine: str, model: str, servers: Mapping[str, Side], settle: float = 0.0
) -> dict[str, list[float]]:
    """Rounds of: each server side (by name) in mp3, the direct WAV writer, each server
    side in wav. Audio seconds per wall second as ``<name>_<format>`` and ``direct``, with
    CPU seconds per call (``..._cpu``), the audio lengths (``..._audio_s``: each side's
    own output, the server's decoded after the rounds, off the clock) and ``instance``.
    ``settle``: see :func:`~bench.measure.interleave`."""
    voice = ctx.options.voices[engine]
    text, _label = tts_text(ctx, engine)
    outputs: dict[str, list[bytes]] = {}
    direct_audio: list[float] = []

    def server(side: Side, name: str, fmt: str) -> Callable[[int], Measured]:
        def call(index: int) -> Measured:
            instance = side(index)
            wall, body, cpu = instance.server_call(instance.client.speech, model, voice, text, fmt)
            outputs.setdefault(name, []).append(body)
            return wall, cpu

        return call

    def direct(index: int) -> Measured:
        wall, cpu, seconds = ctx.instance(index).direct.call(WRITE_WAV[engine], text)
        direct_audio.append(float(seconds))
        return wall, cpu

    sides: dict[str, Callable[[int], Measured]] = {}
    for fmt in FORMATS:
        for name, side in servers.items():
            sides[f"{name}_{fmt}"] = server(side, f"{name}_{fmt}", fmt)
        if fmt == FORMATS[0]:
            sides["direct"] = direct
    warmup = ctx.warmup(*(f"{name}:{engine}" for name in servers), f"direct:{engine}")
    wall = interleave(sides, ctx.options.reps, ctx.count, warmup, settle)
    kept = ctx.options.reps  # the warm-up's outputs come first in the lists
    samples = {k: v for k, v in wall.items() if k.endswith("_cpu") or k == "instance"}
    audio = {
        name: [audio_seconds(body) for body in bodies[-kept:]] for name, bodies in outputs.items()
    }
    audio["direct"] = direct_audio[-kept:]
    for name, seconds in audio.items():
        samples[name] = [a / t for a, t in zip(seconds, wall[name], strict=True)]
        samples[f"{name}_audio_s"] = seconds
    return samples


def _engine(ctx: Context, engine: str, model: str) -> list[Figure]:
    _text, label = tts_text(ctx, engine)
    ctx.log(f"P4 {ENGINE_LABELS[engine]} ({model}, voice {ctx.options.voices[engine]}), {label}")
    samples = throughput_rounds(ctx, engine, model, {"server": ctx.instance}, SETTLE)
    figures = []
    for fmt in FORMATS:
        side = f"server_{fmt}"
        notes = ["direct: wav" if fmt == "mp3" else "", cpu_note(samples, side)]
        name = f"TTS throughput, {ENGINE_LABELS[engine]}, {label}, {fmt}"
        figures.append(ratio_figure("P4", name, "audio s/s", samples, ">= 0.9", notes, side=side))
    return figures
