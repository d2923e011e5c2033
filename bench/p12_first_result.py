"""P12: boot to the first result, per starter model, with the starter set's preloading
(``whisper-1`` and ``tts-1`` load at start-up) against without it
(``BRAGI_PRELOAD_STARTER=false``: every model loads on its first request).

For each model and each variant, a fresh ``bragi serve`` (the starter set, no config,
the assembled models; a data dir booted once before) is spawned and:

- *at /health*: the first request goes out as soon as ``/health`` answers; the time from
  the spawn to its result (the whole transcript of beckett, ``json``; or the first audio
  byte of P3's three sentences, mp3 stream): what a client that starts with the server
  waits;
- *after ready*: the first request goes out once ``/health/ready`` answers and, with
  preloading, ``whisper-1`` and ``tts-1`` say ``loaded`` in ``/v1/models`` (readiness
  does not wait for the preloading); its own latency: what a first user waits.

One server per measurement, stopped after it, with the CPU alone (after the other
suites' servers have stopped); rounds alternate the two variants. Reported as preload ÷
no preload (ratio below 1: preloading helps), not judged: performance.md sets no target.
The notes give the resident memory of each variant once ready.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.assets import TTS_THREE_SENTENCES, recording
from bench.client import Client
from bench.context import Context
from bench.measure import median
from bench.report import NO_TARGET, Figure, ratio_figure
from bench.server import BragiServer, resident_mb

__all__ = ["BASELINE", "STARTER_STT", "STARTER_TTS", "run"]

STARTER_STT = ("whisper-1", "whisper-tiny.en")
STARTER_TTS = {"tts-1": "en_US-joe-medium", "kokoro": "jf_alpha"}
BASELINE = "no preload"
PRELOADED = ("whisper-1", "tts-1")  # the starter set's (src/bragi/models/starter.py)
_OFF = {"BRAGI_PRELOAD_STARTER": "false"}


def _request(alias: str) -> Callable[[Client], object]:
    if alias in STARTER_STT:
        _rec, path = recording("beckett")
        return lambda client: client.transcribe(alias, path)
    voice, text = STARTER_TTS[alias], " ".join(TTS_THREE_SENTENCES)
    return lambda client: client.first_audio(alias, voice, text, "mp3")[0]


def _start(data_dir: Path, ctx: Context, preload: bool) -> BragiServer:
    env = ctx.options.server_env | ({} if preload else _OFF)
    server = BragiServer(data_dir, ctx.models_dir, env)
    server.start()
    return server


def _at_health(data_dir: Path, ctx: Context, alias: str, preload: bool) -> float:
    """Spawn to the first result, the request sent when /health answers."""
    server = _start(data_dir, ctx, preload)
    try:
        server.wait_for("/health", poll=0.005)
        client = Client(server.base_url, server.api_key())
        first = _request(alias)
        if alias in STARTER_STT:
            first(client)
            result = time.perf_counter() - server.started_at
        else:  # the first audio byte
            sent = time.perf_counter() - server.started_at
            result = sent + float(first(client))  # type: ignore[arg-type]
        client.close()
        return result
    finally:
        server.stop()


def _after_ready(data_dir: Path, ctx: Context, alias: str, preload: bool) -> tuple[float, float]:
    """The first request's latency once /health/ready answers; and the RSS then, in MB."""
    server = _start(data_dir, ctx, preload)
    try:
        server.wait_for("/health/ready", timeout=300)
        client = Client(server.base_url, server.api_key())
        if preload:  # /health/ready does not wait for the preloading: see the docs
            _wait_loaded(client, PRELOADED)
        rss = resident_mb(server.pid)
        started = time.perf_counter()
        value = _request(alias)(client)
        latency = time.perf_counter() - started
        if alias not in STARTER_STT:
            latency = float(value)  # type: ignore[arg-type]
        client.close()
        return latency, rss
    finally:
        server.stop()


def _wait_loaded(client: Client, aliases: tuple[str, ...], timeout: float = 300) -> None:
    """Poll ``GET /v1/models/{alias}`` until each says ``state: loaded``."""
    deadline = time.monotonic() + timeout
    for alias in aliases:
        while client.openai.models.retrieve(alias).model_dump().get("state") != "loaded":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{alias} not loaded {timeout} s after start-up")
            time.sleep(0.05)


def run(ctx: Context) -> list[Figure]:
    aliases = [*STARTER_STT, *(a for a in STARTER_TTS if a in ctx.options.tts_models.values())]
    rounds = 1 if ctx.options.quick else 3
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bragi-bench-p12-") as tmp:
        data_dir = Path(tmp)
        ctx.log("P12 first boot (creates the key), then one server per measurement")
        first_boot = _start(data_dir, ctx, preload=False)
        first_boot.wait_for("/health/ready")
        first_boot.stop()
        rss: dict[bool, list[float]] = {True: [], False: []}
        for alias in aliases:
            at_health: dict[str, list[float]] = {"server": [], "baseline": []}
            ready: dict[str, list[float]] = {"server": [], "baseline": []}
            ctx.log(f"P12 {alias}: {rounds} rounds of 4 starts")
            for _ in range(rounds):
                for preload, side in ((True, "server"), (False, "baseline")):
                    at_health[side].append(_at_health(data_dir, ctx, alias, preload))
                    latency, memory = _after_ready(data_dir, ctx, alias, preload)
                    ready[side].append(latency)
                    rss[preload].append(memory)
            what = "beckett json" if alias in STARTER_STT else "first audio, mp3 stream"
            for label, samples in (("request at /health", at_health), ("after ready", ready)):
                figures.append(
                    ratio_figure(
                        "P12",
                        f"first result, `{alias}` ({what}), {label}",
                        "s",
                        samples,
                        NO_TARGET,
                        over="baseline",
                        baseline=BASELINE,
                    )
                )
        note = (
            f"RSS once ready: {median(rss[True]):.0f} MB with the starter preloading, "
            f"{median(rss[False]):.0f} MB without"
        )
        figures[0].note = note
    return figures
