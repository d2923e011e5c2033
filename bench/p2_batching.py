"""P2 with concurrent batching on and off (``batch_requests``, docs/benchmarks.md).

The run's own servers (batching off: the default on CPU, ``max_concurrency`` 2) against
as many more whose config differs only in ``whisper-1``'s ``batch_requests: on`` and
``max_concurrency: 8`` (only requests admitted together can share a batch), interleaved:

- throughput: P2's load (8 clients, 16 requests of beckett), requests/s, on ÷ off;
- a lone request's latency (beckett, one client), on ÷ off: batching must not raise it
  by more than 10 %.

Every request names its language (``en``): a multilingual model batches only those.
Not judged against P2's target (there is no direct side); the rule is on >= off in
throughput and on <= 1.10 x off in latency.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bench.assets import recording
from bench.context import Context
from bench.instances import Side
from bench.measure import Measured, cpu_note, interleave
from bench.p2_stt_throughput import CLIENTS, REQUESTS
from bench.report import Figure, ratio_figure
from bench.server import models_config, starter_set

__all__ = ["VARIANT", "run"]

VARIANT = "batching"
BASELINE = "batching off"


def _config(model: str) -> str:
    models = json.loads(models_config(starter_set()))["models"]
    options = {"batch_requests": "on"}
    models[model] = models[model] | {"options": options, "max_concurrency": CLIENTS}
    return models_config(models)


def run(ctx: Context) -> list[Figure]:
    if not ctx.local or ctx.config is not None:
        return []  # needs the bench's own servers with the starter set
    _rec, path = recording("beckett")
    model = ctx.options.stt_model
    reps = 1 if ctx.options.quick else ctx.count
    ctx.log(f"P2 batching: starting {ctx.count} x bragi serve with batch_requests: on")
    batching = ctx.instances.variant(VARIANT, _config(model))
    try:

        def load(side: Side) -> Callable[[int], Measured]:
            def call(index: int) -> Measured:
                instance = side(index)

                def requests() -> None:
                    with ThreadPoolExecutor(CLIENTS) as pool:
                        futures = [
                            pool.submit(instance.client.transcribe, model, path, language="en")
                            for _ in range(REQUESTS)
                        ]
                        for future in futures:
                            future.result()

                wall, _, cpu = instance.server_call(requests)
                return REQUESTS / wall, cpu / REQUESTS if cpu is not None else None

            return call

        def lone(side: Side) -> Callable[[int], Measured]:
            def call(index: int) -> Measured:
                instance = side(index)
                wall, _, cpu = instance.server_call(
                    instance.client.transcribe, model, path, language="en"
                )
                return wall, cpu

            return call

        for index in range(ctx.count):  # loads whisper-1 in the new servers
            batching(index).client.transcribe(model, path, language="en")
        sides = {"server": load(batching), "off": load(ctx.instance)}
        ctx.log(f"P2 batching: {CLIENTS} clients x {REQUESTS} requests, {reps} rounds")
        samples = interleave(sides, reps, ctx.count, warmup=False)
        lone_sides = {"server": lone(batching), "off": lone(ctx.instance)}
        ctx.log("P2 batching: a lone request")
        alone = interleave(lone_sides, ctx.options.reps, ctx.count, warmup=False)
    finally:
        ctx.instances.stop_variant(VARIANT)
    name = f"STT throughput, {CLIENTS} clients, {REQUESTS} x beckett, batch_requests on"
    lone_name = "STT lone request, beckett, batch_requests on"
    return [
        ratio_figure(
            "P2",
            name,
            "req/s",
            samples,
            ">= 1.0",
            [cpu_note(samples, over="off")],
            over="off",
            baseline=BASELINE,
        ),
        ratio_figure(
            "P2",
            lone_name,
            "s",
            alone,
            "<= 1.10",
            [cpu_note(alone, over="off")],
            over="off",
            baseline=BASELINE,
        ),
    ]
