"""P2: STT throughput under load.

8 clients (threads, one shared ``openai`` client) send 16 requests of the 10 s
recording between them; requests/s through the server ÷ requests/s of 16 sequential
direct faster-whisper calls. Target >= 1.0 on CPU.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from bench.assets import recording
from bench.context import Context
from bench.measure import interleave, median, paired_ratios
from bench.report import Figure, judge

__all__ = ["CLIENTS", "REQUESTS", "run"]

CLIENTS = 8
REQUESTS = 16


def run(ctx: Context) -> list[Figure]:
    rec, path = recording("beckett")
    model = ctx.options.stt_model
    reps = 1 if ctx.options.quick else ctx.options.reps

    def server() -> float:
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(ctx.server.transcribe, model, path) for _ in range(REQUESTS)]
            for future in futures:
                future.result()
        return REQUESTS / (time.perf_counter() - started)

    def direct() -> float:
        started = time.perf_counter()
        for _ in range(REQUESTS):
            ctx.direct.transcribe(path)
        return REQUESTS / (time.perf_counter() - started)

    ctx.log(f"P2 {CLIENTS} clients x {REQUESTS} requests of {rec.label}, {reps} round(s)")
    if ctx.warmup("server:stt", "direct:stt"):  # one request each, not a whole round
        ctx.server.transcribe(model, path)
        ctx.direct.transcribe(path)
    samples = interleave({"server": server, "direct": direct}, reps, warmup=0)
    ratios = paired_ratios(samples["server"], samples["direct"])
    score = median(ratios)
    target = ">= 1.0"
    return [
        Figure(
            id="P2",
            name=f"STT throughput, {CLIENTS} clients, {REQUESTS} x {rec.label}",
            unit="req/s",
            bragi=median(samples["server"]),
            direct=median(samples["direct"]),
            score=score,
            score_kind="ratio",
            target=target,
            passed=judge(score, target),
            samples=samples | {"ratio": ratios},
            note="direct: the same requests one after another"
            + ("; --quick: 1 round" if reps == 1 else ""),
        )
    ]
