"""P3: TTS time to first audio.

A three-sentence text streamed from ``/v1/audio/speech`` (mp3, the default format):
seconds from the request to the first audio byte ÷ seconds the engine library takes to
synthesize the first sentence alone. The rest of the stream is read (untimed) before
the next call, so no synthesis overlaps a measurement. Target <= 1.25.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.assets import TTS_THREE_SENTENCES
from bench.context import Context
from bench.measure import interleave, median, paired_ratios, timed
from bench.report import Figure, judge

__all__ = ["ENGINE_LABELS", "direct_synthesis", "run"]

ENGINE_LABELS = {"piper": "Piper", "kokoro": "Kokoro"}
FORMAT = "mp3"


def direct_synthesis(ctx: Context, engine: str) -> Callable[[str], object]:
    """The engine library synthesizing a text to samples (nothing encoded)."""
    if engine == "piper":
        return ctx.direct.piper_samples
    return lambda text: ctx.direct.kokoro_samples(text, ctx.direct_voice(engine))


def run(ctx: Context) -> list[Figure]:
    text = " ".join(TTS_THREE_SENTENCES)
    first_sentence = TTS_THREE_SENTENCES[0]
    figures = []
    for engine, model in ctx.options.tts_models.items():
        voice = ctx.options.voices[engine]
        synthesize = direct_synthesis(ctx, engine)

        def server(model: str = model, voice: str = voice) -> float:
            first, _body = ctx.server.first_audio(model, voice, text, FORMAT)
            return first

        def direct(synthesize: Callable[[str], object] = synthesize) -> float:
            return timed(synthesize, first_sentence)[0]

        ctx.log(f"P3 {ENGINE_LABELS[engine]} ({model}, voice {voice})")
        warmup = ctx.warmup(f"server:{engine}", f"direct:{engine}")
        samples = interleave({"server": server, "direct": direct}, ctx.options.reps, warmup)
        ratios = paired_ratios(samples["server"], samples["direct"])
        score = median(ratios)
        target = "<= 1.25"
        figures.append(
            Figure(
                id="P3",
                name=f"TTS first audio, {ENGINE_LABELS[engine]}, 3 sentences, {FORMAT} stream",
                unit="s",
                bragi=median(samples["server"]),
                direct=median(samples["direct"]),
                score=score,
                score_kind="ratio",
                target=target,
                passed=judge(score, target),
                samples=samples | {"ratio": ratios},
                note="direct: first sentence alone" if engine == "piper" else "",
            )
        )
    return figures
