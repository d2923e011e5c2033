"""P2: STT throughput under load.

8 clients (threads sharing one ``openai`` client) send 16 requests of the 10 s recording
between them; requests/s through the server ÷ requests/s of sequential direct
faster-whisper calls (8 per round, taking the worker processes in turn: a sequential rate
does not depend on the count).
5 or more rounds (--quick: 1). Target >= 1.0 on CPU.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bench.assets import recording
from bench.context import Context
from bench.measure import Measured, cpu_note, interleave, spread_note
from bench.report import Figure, ratio_figure

__all__ = ["CLIENTS", "DIRECT_CALLS", "REQUESTS", "run"]

CLIENTS = 8
REQUESTS = 16
#: A sequential rate needs no more calls than this to be measured; it saves minutes.
DIRECT_CALLS = 8


def run(ctx: Context) -> list[Figure]:
    rec, path = recording("beckett")
    model = ctx.options.stt_model
    reps = 1 if ctx.options.quick else ctx.options.reps  # --quick: one round (a minute)

    def server(index: int) -> Measured:
        instance = ctx.instance(index)

        def load() -> None:
            with ThreadPoolExecutor(CLIENTS) as pool:
                futures = [
                    pool.submit(instance.client.transcribe, model, path) for _ in range(REQUESTS)
                ]
                for future in futures:
                    future.result()

        wall, _, cpu = instance.server_call(load)
        return REQUESTS / wall, cpu / REQUESTS if cpu is not None else None

    def direct(index: int) -> Measured:
        # one after another, each on the next worker: no single process's bias
        calls = [
            ctx.instance(index + n).direct.call("transcribe", path) for n in range(DIRECT_CALLS)
        ]
        wall, cpu = sum(c[0] for c in calls), sum(c[1] for c in calls)
        return DIRECT_CALLS / wall, cpu / DIRECT_CALLS

    ctx.log(f"P2 {CLIENTS} clients x {REQUESTS} requests of {rec.label}, {reps} rounds")
    if ctx.warmup("server:stt", "direct:stt"):  # one request each, not a whole round
        for index in range(ctx.count):
            ctx.instance(index).client.transcribe(model, path)
            ctx.instance(index).direct.call("transcribe", path)
    samples = interleave({"server": server, "direct": direct}, reps, ctx.count, warmup=False)
    notes = [
        f"direct: {DIRECT_CALLS} calls one after another, over {ctx.count} processes",
        cpu_note(samples),
        spread_note(samples, "server") if ctx.local else "",
    ]
    name = f"STT throughput, {CLIENTS} clients, {REQUESTS} x {rec.label}"
    from bench import p2_batching  # the same figure with concurrent batching on and off

    return [ratio_figure("P2", name, "req/s", samples, ">= 1.0", notes), *p2_batching.run(ctx)]
