"""P3: TTS time to first audio.

A three-sentence text streamed from ``/v1/audio/speech`` (mp3, the default format):
seconds from the request to the first audio byte ÷ seconds the engine library takes to
synthesize the first sentence alone. The rest of the stream is read (untimed) before
the next call, so no synthesis overlaps a measurement. Piper gets three times the rounds
(its calls are short). Target <= 1.25.
"""

from __future__ import annotations

from bench.assets import TTS_THREE_SENTENCES
from bench.context import Context
from bench.measure import Measured, interleave, spread_note
from bench.report import Figure, ratio_figure

__all__ = ["ENGINE_LABELS", "FORMAT", "SYNTHESIZE", "run"]

ENGINE_LABELS = {"piper": "Piper", "kokoro": "Kokoro"}
#: the direct worker's method that synthesizes a text to samples (nothing encoded)
SYNTHESIZE = {"piper": "piper_samples", "kokoro": "kokoro_samples"}
FORMAT = "mp3"
WARMUP_TEXT = "Hello."


def run(ctx: Context) -> list[Figure]:
    return [_figure(ctx, engine, model) for engine, model in ctx.options.tts_models.items()]


def _figure(ctx: Context, engine: str, model: str) -> Figure:
    text = " ".join(TTS_THREE_SENTENCES)
    first_sentence = TTS_THREE_SENTENCES[0]
    voice = ctx.options.voices[engine]

    def server(index: int) -> Measured:
        first, _body = ctx.instance(index).client.first_audio(model, voice, text, FORMAT)
        return float(first)

    def direct(index: int) -> Measured:
        wall, _cpu, _samples = ctx.instance(index).direct.call(SYNTHESIZE[engine], first_sentence)
        return wall

    ctx.log(f"P3 {ENGINE_LABELS[engine]} ({model}, voice {voice})")
    if ctx.warmup(f"server:{engine}", f"direct:{engine}"):  # loads the models: one word each
        for index in range(ctx.count):
            ctx.instance(index).client.speech(model, voice, WARMUP_TEXT, FORMAT)
            ctx.instance(index).direct.call(SYNTHESIZE[engine], WARMUP_TEXT)
    # Piper's calls take a tenth of a second: more rounds cost little and steady the median
    reps = ctx.options.reps * (3 if engine == "piper" else 1)
    samples = interleave({"server": server, "direct": direct}, reps, ctx.count, warmup=False)
    notes = [f"{reps} rounds" if engine == "piper" else "", spread_note(samples, "direct")]
    name = f"TTS first audio, {ENGINE_LABELS[engine]}, 3 sentences, {FORMAT} stream"
    return ratio_figure("P3", name, "s", samples, "<= 1.25", notes)
