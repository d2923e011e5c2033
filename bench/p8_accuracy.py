"""P8: accuracy parity. Word error rate of the server's transcript and of the direct
faster-whisper call on the real recordings (beckett.wav, two_cities.wav; --quick:
beckett only unless P1 already transcribed both), after lower-casing and stripping
punctuation (jiwer). Equal means within 0.5 percentage points; both are reported.
"""

from __future__ import annotations

from bench.assets import recording, word_error_rate
from bench.context import Context
from bench.report import Figure, judge

__all__ = ["run"]


def _transcript(ctx: Context, side: str, key: str) -> str:
    cached = ctx.transcripts.get((side, key))
    if cached is None:
        _rec, path = recording(key)
        instance = ctx.instance(0)
        if side == "server":
            cached = instance.client.transcribe(ctx.options.stt_model, path)
        else:
            cached = str(instance.direct.call("transcribe", path)[2])
        ctx.transcripts[(side, key)] = cached
    return cached


def run(ctx: Context) -> list[Figure]:
    keys = ["beckett", "two_cities"]
    if ctx.options.quick:
        keys = [k for k in keys if k == "beckett" or ("server", k) in ctx.transcripts]
    figures = []
    for key in keys:
        rec, _path = recording(key)
        ctx.log(f"P8 {rec.label}")
        server = word_error_rate(rec.reference, _transcript(ctx, "server", key))
        direct = word_error_rate(rec.reference, _transcript(ctx, "direct", key))
        score = server - direct
        target = "± 0.5 pp"
        same = _transcript(ctx, "server", key) == _transcript(ctx, "direct", key)
        figures.append(
            Figure(
                id="P8",
                name=f"accuracy parity, {rec.label}",
                unit="% WER",
                bragi=server,
                direct=direct,
                score=score,
                score_kind="difference",
                target=target,
                passed=judge(score, target),
                note=""
                if same
                else "transcripts differ: "
                f"server {_transcript(ctx, 'server', key)!r}; "
                f"direct {_transcript(ctx, 'direct', key)!r}",
            )
        )
    return figures
