"""P4: TTS throughput.

Seconds of audio per wall second: ``/v1/audio/speech`` (whole body, mp3 and wav) ÷ the
engine library synthesizing the same text to a WAV file in memory (Piper's
``synthesize_wav``; Kokoro's ``create`` and a 16-bit WAV). Each side's audio length is
its own output's (the server's is decoded after the rounds, off the clock). Rounds run
mp3, direct, wav; both ratios use the round's direct number. Target >= 0.9.
"""

from __future__ import annotations

from bench.assets import TTS_LONG
from bench.client import audio_seconds
from bench.context import Context
from bench.measure import Measured, cpu_note, interleave, median, paired_ratios
from bench.p3_tts_first_audio import ENGINE_LABELS
from bench.report import Figure, judge

__all__ = ["run"]

WRITE_WAV = {"piper": "piper_wav", "kokoro": "kokoro_wav"}


def _text(ctx: Context, engine: str) -> tuple[str, str]:
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


def _engine(ctx: Context, engine: str, model: str) -> list[Figure]:
    voice = ctx.options.voices[engine]
    text, label = _text(ctx, engine)
    bodies: dict[str, list[bytes]] = {"mp3": [], "wav": []}
    direct_audio: list[float] = []

    def server(index: int, fmt: str) -> Measured:
        instance = ctx.instance(index)
        wall, body, cpu = instance.server_call(instance.client.speech, model, voice, text, fmt)
        bodies[fmt].append(body)  # decoded after the rounds, off the clock
        return wall, cpu

    def direct(index: int) -> Measured:
        wall, cpu, seconds = ctx.instance(index).direct.call(WRITE_WAV[engine], text)
        direct_audio.append(float(seconds))
        return wall, cpu

    ctx.log(f"P4 {ENGINE_LABELS[engine]} ({model}, voice {voice}), {label}")
    sides = {
        "server_mp3": lambda index: server(index, "mp3"),
        "direct": direct,
        "server_wav": lambda index: server(index, "wav"),
    }
    warmup = ctx.warmup(f"server:{engine}", f"direct:{engine}")
    wall = interleave(sides, ctx.options.reps, ctx.count, warmup)
    kept = ctx.options.reps  # the warm-up's outputs come first in the lists
    direct_rate = [a / t for a, t in zip(direct_audio[-kept:], wall["direct"], strict=True)]
    figures = []
    for fmt in ("mp3", "wav"):
        audio = [audio_seconds(body) for body in bodies[fmt][-kept:]]
        rate = [a / t for a, t in zip(audio, wall[f"server_{fmt}"], strict=True)]
        ratios = paired_ratios(rate, direct_rate)
        score = median(ratios)
        target = ">= 0.9"
        samples = {"server": rate, "direct": direct_rate, "ratio": ratios}
        samples |= {k: v for k, v in wall.items() if k.endswith("_cpu") or k == "instance"}
        samples["server_audio_s"] = audio
        samples["direct_audio_s"] = direct_audio[-kept:]
        notes = ["direct: wav" if fmt == "mp3" else "", cpu_note(samples, f"server_{fmt}")]
        figures.append(
            Figure(
                id="P4",
                name=f"TTS throughput, {ENGINE_LABELS[engine]}, {label}, {fmt}",
                unit="audio s/s",
                bragi=median(rate),
                direct=median(direct_rate),
                score=score,
                score_kind="ratio",
                target=target,
                passed=judge(score, target),
                samples=samples,
                note="; ".join(n for n in notes if n),
            )
        )
    return figures
