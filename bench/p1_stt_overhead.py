"""P1: STT server overhead.

The same file through ``/v1/audio/transcriptions`` (official ``openai`` client: upload,
server-side decode, transcription, JSON) ÷ faster-whisper's ``WhisperModel.transcribe``
called on the file path (faster-whisper decodes it) with every segment read. ``json``,
and ``verbose_json`` with word timestamps. Target <= 1.05 (json), <= 1.10 (words).
"""

from __future__ import annotations

from bench.assets import recording
from bench.context import Context
from bench.measure import Measured, cpu_note, interleave, spread_note
from bench.report import Figure, ratio_figure

__all__ = ["run"]


def run(ctx: Context) -> list[Figure]:
    keys = ["beckett"] if ctx.options.quick else ["beckett", "two_cities"]
    return [_figure(ctx, key, words) for key in keys for words in (False, True)]


def _figure(ctx: Context, key: str, words: bool) -> Figure:
    rec, path = recording(key)
    label = "verbose_json + words" if words else "json"
    texts: dict[str, str] = {}

    def server(index: int) -> Measured:
        instance = ctx.instance(index)
        model = ctx.options.stt_model
        wall, texts["server"], cpu = instance.server_call(
            instance.client.transcribe, model, path, words=words
        )
        return wall, cpu

    def direct(index: int) -> Measured:
        wall, cpu, texts["direct"] = ctx.instance(index).direct.call(
            "transcribe", path, words=words
        )
        return wall, cpu

    ctx.log(f"P1 {rec.label} {label}")
    kind = "stt+words" if words else "stt"  # word alignment is its own first call
    warmup = ctx.warmup(f"server:{kind}", f"direct:{kind}")
    sides = {"server": server, "direct": direct}
    samples = interleave(sides, ctx.options.reps, ctx.count, warmup)
    if not words:
        ctx.transcripts[("server", key)] = texts["server"]
        ctx.transcripts[("direct", key)] = texts["direct"]
    notes = [
        cpu_note(samples),
        spread_note(samples, "server") if ctx.local else "",
        spread_note(samples, "direct"),
    ]
    name = f"STT overhead, {rec.label}, {label}"
    return ratio_figure("P1", name, "s", samples, "<= 1.10" if words else "<= 1.05", notes)
