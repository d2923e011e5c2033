"""P1: STT server overhead.

The same file through ``/v1/audio/transcriptions`` (official ``openai`` client: upload,
server-side decode, transcription, JSON) ÷ faster-whisper's ``WhisperModel.transcribe``
called on the file path (faster-whisper decodes it) with every segment read. ``json``,
and ``verbose_json`` with word timestamps. Target <= 1.05 (json), <= 1.10 (words).
"""

from __future__ import annotations

from bench.assets import recording
from bench.context import Context
from bench.measure import interleave, median, paired_ratios, timed
from bench.report import Figure, judge

__all__ = ["run"]


def run(ctx: Context) -> list[Figure]:
    keys = ["beckett"] if ctx.options.quick else ["beckett", "two_cities"]
    figures = []
    for key in keys:
        rec, path = recording(key)
        for words in (False, True):
            label = "verbose_json + words" if words else "json"
            texts: dict[str, str] = {}

            def server(words: bool = words) -> float:
                model = ctx.options.stt_model
                seconds, texts["server"] = timed(ctx.server.transcribe, model, path, words=words)
                return seconds

            def direct(words: bool = words) -> float:
                seconds, texts["direct"] = timed(ctx.direct.transcribe, path, words=words)
                return seconds

            ctx.log(f"P1 {rec.label} {label}")
            warmup = ctx.warmup("server:stt", "direct:stt")
            samples = interleave({"server": server, "direct": direct}, ctx.options.reps, warmup)
            ratios = paired_ratios(samples["server"], samples["direct"])
            score = median(ratios)
            target = "<= 1.10" if words else "<= 1.05"
            if not words:
                ctx.transcripts[("server", key)] = texts["server"]
                ctx.transcripts[("direct", key)] = texts["direct"]
            figures.append(
                Figure(
                    id="P1",
                    name=f"STT overhead, {rec.label}, {label}",
                    unit="s",
                    bragi=median(samples["server"]),
                    direct=median(samples["direct"]),
                    score=score,
                    score_kind="ratio",
                    target=target,
                    passed=judge(score, target),
                    samples=samples | {"ratio": ratios},
                )
            )
    return figures
