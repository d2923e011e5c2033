"""P1: STT server overhead.

The same file through ``/v1/audio/transcriptions`` (official ``openai`` client: upload,
server-side decode, transcription, JSON) ÷ faster-whisper's ``WhisperModel.transcribe``
called on the file path (faster-whisper decodes it) with every segment read. ``json``,
and ``verbose_json`` with word timestamps. Target <= 1.05 (json), <= 1.10 (words).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from bench.assets import recording
from bench.context import Context
from bench.instances import Side
from bench.measure import Measured, cpu_note, interleave, spread_note
from bench.report import Figure, ratio_figure

__all__ = ["run", "transcription_rounds"]


def run(ctx: Context) -> list[Figure]:
    keys = ["beckett"] if ctx.options.quick else ["beckett", "two_cities"]
    return [_figure(ctx, key, words) for key in keys for words in (False, True)]


def transcription_rounds(
    ctx: Context,
    path: Path,
    words: bool,
    servers: Mapping[str, Side],
    settle: float = 0.0,
    reps: int | None = None,
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """(samples, texts): ``reps`` rounds (default: the run's) of each server side (by
    name) transcribing ``path`` with the STT model, then faster-whisper on the path
    (``direct``); wall and CPU seconds, and each side's last transcript. ``settle``: see
    :func:`~bench.measure.interleave`."""
    texts: dict[str, str] = {}
    model = ctx.options.stt_model

    def server(side: Side, name: str) -> Callable[[int], Measured]:
        def call(index: int) -> Measured:
            instance = side(index)
            wall, texts[name], cpu = instance.server_call(
                instance.client.transcribe, model, path, words=words
            )
            return wall, cpu

        return call

    def direct(index: int) -> Measured:
        wall, cpu, texts["direct"] = ctx.instance(index).direct.call(
            "transcribe", path, words=words
        )
        return wall, cpu

    kind = "stt+words" if words else "stt"  # word alignment is its own first call
    warmup = ctx.warmup(*(f"{name}:{kind}" for name in servers), f"direct:{kind}")
    sides = {name: server(side, name) for name, side in servers.items()} | {"direct": direct}
    return interleave(sides, reps or ctx.options.reps, ctx.count, warmup, settle), texts


def _figure(ctx: Context, key: str, words: bool) -> Figure:
    rec, path = recording(key)
    label = "verbose_json + words" if words else "json"
    ctx.log(f"P1 {rec.label} {label}")
    samples, texts = transcription_rounds(ctx, path, words, {"server": ctx.instance})
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
