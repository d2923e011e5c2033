"""P3: TTS time to first audio.

A three-sentence text streamed from ``/v1/audio/speech`` (mp3, the default format):
seconds from the request to the first audio byte ÷ seconds the engine library takes to
synthesize the first sentence alone. The rest of the stream is read (untimed) before
the next call, so no synthesis overlaps a measurement, and every call waits
:data:`~bench.measure.SETTLE` first, so neither side pays for the other's spinning
threads (back to back, the side after a spinning process is 20-30 ms slower, whichever
it is). Piper gets three times the rounds
(its calls are short). The CPU seconds up to the first byte (server and client) are
noted beside the direct call's. Target <= 1.25.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bench.assets import TTS_THREE_SENTENCES
from bench.context import Context
from bench.instances import Side
from bench.measure import SETTLE, Measured, cpu_note, interleave, spread_note
from bench.report import Figure, ratio_figure

__all__ = ["ENGINE_LABELS", "FORMAT", "SYNTHESIZE", "first_audio_rounds", "run"]

ENGINE_LABELS = {"piper": "Piper", "kokoro": "Kokoro"}
#: the direct worker's method that synthesizes a text to samples (nothing encoded)
SYNTHESIZE = {"piper": "piper_samples", "kokoro": "kokoro_samples"}
FORMAT = "mp3"
WARMUP_TEXT = "Hello."


def run(ctx: Context) -> list[Figure]:
    return [_figure(ctx, engine, model) for engine, model in ctx.options.tts_models.items()]


def first_audio_rounds(
    ctx: Context, engine: str, model: str, servers: Mapping[str, Side], settle: float = 0.0
) -> tuple[int, dict[str, list[float]]]:
    """(rounds, samples): each server side (by name) streams the three sentences, then the
    engine synthesizes the first sentence alone (``direct``); seconds to the first audio
    byte, with the CPU seconds up to it. A side's warm-up is one word per process, once.
    ``settle``: see :func:`~bench.measure.interleave`."""
    text = " ".join(TTS_THREE_SENTENCES)
    first_sentence = TTS_THREE_SENTENCES[0]
    voice = ctx.options.voices[engine]

    def server(side: Side) -> Callable[[int], Measured]:
        return lambda index: side(index).first_audio(model, voice, text, FORMAT)

    def direct(index: int) -> Measured:
        wall, cpu, _samples = ctx.instance(index).direct.call(SYNTHESIZE[engine], first_sentence)
        return wall, cpu

    if ctx.warmup(*(f"{name}:{engine}" for name in servers), f"direct:{engine}"):
        for index in range(ctx.count):  # loads the models: one word each
            for side in servers.values():
                side(index).client.speech(model, voice, WARMUP_TEXT, FORMAT)
            ctx.instance(index).direct.call(SYNTHESIZE[engine], WARMUP_TEXT)
    # Piper's calls take a tenth of a second: more rounds cost little and steady the median
    reps = ctx.options.reps * (3 if engine == "piper" else 1)
    sides = {name: server(side) for name, side in servers.items()} | {"direct": direct}
    return reps, interleave(sides, reps, ctx.count, warmup=False, settle=settle)


def _figure(ctx: Context, engine: str, model: str) -> Figure:
    ctx.log(f"P3 {ENGINE_LABELS[engine]} ({model}, voice {ctx.options.voices[engine]})")
    reps, samples = first_audio_rounds(ctx, engine, model, {"server": ctx.instance}, SETTLE)
    notes = [
        f"{reps} rounds" if engine == "piper" else "",
        cpu_note(samples),
        spread_note(samples, "direct"),
    ]
    name = f"TTS first audio, {ENGINE_LABELS[engine]}, 3 sentences, {FORMAT} stream"
    return ratio_figure("P3", name, "s", samples, "<= 1.25", notes)
