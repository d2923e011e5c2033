"""P4: TTS throughput.

Seconds of audio per wall second: ``/v1/audio/speech`` (whole body, mp3 and wav) ÷ the
engine library synthesizing the same text to a WAV file in memory (Piper's
``synthesize_wav``; Kokoro's ``create`` and a 16-bit WAV). Each side's audio length is
its own output's (the server's is decoded after the clock stops). Rounds run
mp3, direct, wav; both ratios use the round's direct number. Target >= 0.9.
"""

from __future__ import annotations

from bench.assets import TTS_LONG, TTS_THREE_SENTENCES
from bench.client import audio_seconds
from bench.context import Context
from bench.measure import interleave, median, paired_ratios, timed
from bench.p3_tts_first_audio import ENGINE_LABELS
from bench.report import Figure, judge

__all__ = ["run"]


def _text(ctx: Context, engine: str) -> tuple[str, str]:
    """(text, label): ten sentences; Kokoro (about 10x slower) and --quick fewer."""
    if ctx.options.quick:
        sentences = TTS_THREE_SENTENCES
    elif engine == "kokoro":
        sentences = TTS_LONG[:5]
    else:
        sentences = TTS_LONG
    return " ".join(sentences), f"{len(sentences)} sentences"


def run(ctx: Context) -> list[Figure]:
    figures = []
    for engine, model in ctx.options.tts_models.items():
        voice = ctx.options.voices[engine]
        text, label = _text(ctx, engine)

        def server(fmt: str, model: str = model, voice: str = voice, text: str = text) -> float:
            seconds, body = timed(ctx.server.speech, model, voice, text, fmt)
            return audio_seconds(body) / seconds

        def direct(engine: str = engine, text: str = text) -> float:
            if engine == "piper":
                seconds, audio = timed(ctx.direct.piper_wav, text)
            else:
                seconds, audio = timed(ctx.direct.kokoro_wav, text, ctx.direct_voice(engine))
            return float(audio) / seconds

        ctx.log(f"P4 {ENGINE_LABELS[engine]} ({model}, voice {voice}), {label}")
        warmup = ctx.warmup(f"server:{engine}", f"direct:{engine}")
        samples = interleave(
            {
                "server_mp3": lambda server=server: server("mp3"),
                "direct": direct,
                "server_wav": lambda server=server: server("wav"),
            },
            ctx.options.reps,
            warmup,
        )
        for fmt in ("mp3", "wav"):
            ratios = paired_ratios(samples[f"server_{fmt}"], samples["direct"])
            score = median(ratios)
            target = ">= 0.9"
            figures.append(
                Figure(
                    id="P4",
                    name=f"TTS throughput, {ENGINE_LABELS[engine]}, {label}, {fmt}",
                    unit="audio s/s",
                    bragi=median(samples[f"server_{fmt}"]),
                    direct=median(samples["direct"]),
                    score=score,
                    score_kind="ratio",
                    target=target,
                    passed=judge(score, target),
                    samples={"server": samples[f"server_{fmt}"], "direct": samples["direct"]}
                    | {"ratio": ratios},
                    note="direct: wav" if engine == "piper" and fmt == "mp3" else "",
                )
            )
    return figures
