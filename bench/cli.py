"""``python -m bench``: run the suites and print the table; ``python -m bench compare A B``;
``python -m bench soak`` (:mod:`bench.soak`)."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import report
from bench.context import Context, Options
from bench.direct import VOICES, materialize_starter
from bench.machine import CpuShare, load_average, machine_info, usable_cpus
from bench.p16_diarization import prepare_diarizer, with_diarizer
from bench.stt_models import prepare_stt_models, server_config

__all__ = ["main"]

#: suite id -> module; listed in the order they run (P8 reuses P1's transcripts while
#: Whisper is warm; P10 starts more servers beside the main ones and stops them; P6/P7
#: start their own servers after the main ones have stopped)
SUITES = {
    "p1": "bench.p1_stt_overhead",
    "p8": "bench.p8_accuracy",
    "p2": "bench.p2_stt_throughput",
    "p9": "bench.p9_stt_engines",
    "p3": "bench.p3_tts_first_audio",
    "p4": "bench.p4_tts_throughput",
    "p10": "bench.p10_worker_cost",
    "p13": "bench.p13_web_page",
    "p14": "bench.p14_wyoming",
    "p15": "bench.p15_live",
    "p16": "bench.p16_diarization",
    "p11": "bench.p11_long_recording",
    "p6": "bench.p6_idle_memory",
    "p7": "bench.p7_startup",
    "p12": "bench.p12_first_result",
    "peers": "bench.peer_table",
    "p5": "bench.p5_image_size",
    "p17": "bench.p17_torch_tts",
}
KNOWN = sorted(SUITES, key=report.figure_order)  # p1 ... p17
NEEDS_SERVER = {"p1", "p2", "p3", "p4", "p8", "p9", "p10", "p11", "p13", "p15", "p16"}
#: about `bragi serve` itself: not run against --base-url
LOCAL_BRAGI = {"p6", "p7", "p12"}
#: compares configs of the bench's own `bragi serve`: never against --base-url
LOCAL_SERVERS = {"p10", "p14"}
#: needs models an outside server does not have (P9's aliases and tiny models, P16's
#: diarizer): not run against --base-url unless named
OWN_MODELS = {"p9", "p16"}
#: runs only when named: peers installs other servers (each in its own venv, once); p17
#: needs the torch-tts environment and takes many minutes
OPT_IN = {"peers", "p17"}
TTS_ENGINES = ("piper", "kokoro")
DEFAULT_TTS_MODELS = {"piper": "tts-1", "kokoro": "kokoro"}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _default_models_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "bragi-bench" / "models"


def _pairs(text: str, what: str, engines: Sequence[str]) -> dict[str, str]:
    """``piper=tts-1,kokoro=kokoro``; a bare value applies to every engine in ``engines``."""
    values: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        engine, sep, value = item.partition("=")
        if not sep:
            values |= dict.fromkeys(engines, item)
            continue
        if engine not in TTS_ENGINES:
            raise SystemExit(f"bench: {what}: unknown engine {engine!r} (piper, kokoro)")
        values[engine] = value
    return values


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Bragi against the engines it serves, side by side, in one run "
        "(docs/benchmarks.md). `python -m bench compare A.json B.json` compares two runs.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and files (< 2 min)")
    parser.add_argument(
        "--suites",
        default=None,
        help=f"comma-separated subset of {','.join(KNOWN)} (default: all)",
    )
    parser.add_argument(
        "--base-url",
        help="an OpenAI-compatible server to measure instead of starting `bragi serve` "
        "(without /v1); the direct side still runs here",
    )
    parser.add_argument("--api-key", help="its API key (default: $OPENAI_API_KEY)")
    parser.add_argument("--stt-model", default="whisper-1", help="default: whisper-1")
    parser.add_argument(
        "--tts-model",
        default=None,
        help="engine=model pairs; only the engines named run (default: piper=tts-1,kokoro=kokoro)",
    )
    parser.add_argument(
        "--voice",
        default=None,
        help="engine=voice pairs, or one voice for every engine "
        f"(default: {','.join(f'{k}={v}' for k, v in VOICES.items())})",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=3,
        help="server and direct-engine processes per side, used in turn (default 3): one "
        "process of an engine can run 10 %% faster or slower than another for its whole life",
    )
    parser.add_argument("--out", type=Path, help="results JSON (default: bench/results/...)")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="where the starter models are assembled for both sides "
        "(default: $XDG_CACHE_HOME/bragi-bench/models)",
    )
    parser.add_argument("--image-size-json", type=Path, help="scripts/build-image's result (P5)")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the `bragi serve` the bench starts (repeatable), "
        "e.g. OMP_WAIT_POLICY=PASSIVE to try a fix",
    )
    return parser


def _options(args: argparse.Namespace) -> tuple[Options, list[str]]:
    if args.suites:
        wanted = [s.strip().lower() for s in args.suites.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in SUITES]
        if unknown:
            raise SystemExit(f"bench: unknown suites {unknown}; known: {KNOWN}")
        if args.base_url and LOCAL_SERVERS & set(wanted):
            raise SystemExit(
                "bench: p10 and p14 measure the bench's own bragi serve: no --base-url"
            )
    else:
        skipped = LOCAL_BRAGI | OWN_MODELS | LOCAL_SERVERS if args.base_url else set()
        skipped |= OPT_IN
        wanted = [s for s in SUITES if s not in skipped]
    suites = [s for s in SUITES if s in wanted]  # run order
    tts_models = dict(DEFAULT_TTS_MODELS)
    if args.tts_model:
        tts_models = _pairs(args.tts_model, "--tts-model", ())
        if not tts_models:
            raise SystemExit("bench: --tts-model needs engine=model pairs, e.g. piper=tts-1")
    engines = [e for e in TTS_ENGINES if e in tts_models]
    voices = {e: VOICES[e] for e in engines} | _pairs(args.voice or "", "--voice", engines)
    api_key = args.api_key or os.environ.get("OPENAI_API_KEY") or "none"
    server_env = {}
    for item in args.server_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"bench: --server-env wants NAME=VALUE, got {item!r}")
        server_env[name] = value
    options = Options(
        quick=args.quick,
        base_url=args.base_url,
        api_key=api_key if args.base_url else None,
        stt_model=args.stt_model,
        tts_models={e: tts_models[e] for e in engines},
        voices={e: voices[e] for e in engines},
        image_size_json=args.image_size_json,
        server_env=server_env,
        instances=max(1, args.instances),
    )
    return options, suites


def _results_path(date: dt.datetime, quick: bool) -> Path:
    """bench/results/<date>-<host>[-quick].json; -2, -3, ... for later runs that day."""
    stem = f"{date:%Y-%m-%d}-{socket.gethostname()}{'-quick' if quick else ''}"
    path, number = RESULTS_DIR / f"{stem}.json", 1
    while path.exists():
        number += 1
        path = RESULTS_DIR / f"{stem}-{number}.json"
    return path


def _method(options: Options) -> str:
    return (
        f"server and direct calls interleaved (A B A B), {options.reps} kept rounds after a "
        f"warm-up call per process and engine, rotating over {options.instances} server and "
        f"{options.instances} direct processes (--quick: P2 one round); "
        "ratio = median of the per-round ratios; same model files (Whisper int8) and "
        f"{usable_cpus()} threads on both sides"
    )


def run(argv: Sequence[str]) -> int:
    args = _run_parser().parse_args(argv)
    options, suites = _options(args)
    started = time.perf_counter()
    date = dt.datetime.now(dt.UTC)
    load_start = load_average()
    share = CpuShare.start()
    models_dir = args.models_dir or _default_models_dir()
    print(f"[bench] assembling the starter models in {models_dir}", file=sys.stderr)
    materialize_starter(models_dir)  # once here, so no process assembles them in a run
    config = None  # the starter set
    if "p9" in suites:
        prepare_stt_models(models_dir)
        config = server_config(models_dir)  # the starter set and P9's models
    if "p16" in suites:
        config = with_diarizer(config, prepare_diarizer(models_dir))
    ctx = Context(options, models_dir, config)
    figures: list[report.Figure] = []
    durations: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bragi-bench-") as tmp:
        try:
            if NEEDS_SERVER & set(suites):
                what = f"{options.instances} direct-engine workers"
                if options.base_url is None:
                    what = f"{options.instances} x bragi serve (starter set, auth on) and " + what
                ctx.log(f"starting {what}")
                ctx.instances.start(
                    options.instances,
                    models_dir,
                    Path(tmp),
                    base_url=options.base_url,
                    api_key=options.api_key,
                    server_env=options.server_env,
                    config=config,
                )
            for suite in suites:
                if suite in LOCAL_BRAGI:
                    ctx.instances.stop_servers()  # start-up figures get the CPU alone
                begun = time.perf_counter()
                module = importlib.import_module(SUITES[suite])
                figures.extend(module.run(ctx))
                durations[suite] = time.perf_counter() - begun
        except Exception:
            if dead := ctx.instances.post_mortem():
                print(f"[bench] a process died:\n{dead}", file=sys.stderr)
            raise
        finally:
            ctx.instances.close()
    durations["total"] = time.perf_counter() - started
    run_info: dict[str, Any] = {
        "bench_version": 1,
        "date": date.strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if options.quick else "full",
        "suites": suites,
        "machine": machine_info(),
        "load_average": {"start": load_start, "end": load_average()},
        "other_processes_cores": share.others(),
        "server": options.base_url
        or "bragi serve started by the bench (starter set"
        + (", P9's models" if "p9" in suites else "")
        + (", P16's diarizer" if "p16" in suites else "")
        + ")"
        + (", and as many with runner: worker on every model for P10" if "p10" in suites else "")
        + (", and as many with Wyoming on for P14" if "p14" in suites else "")
        + "".join(f", {k}={v}" for k, v in options.server_env.items()),
        "settings": {
            "stt_model": options.stt_model,
            "tts_models": options.tts_models,
            "voices": options.voices,
            "reps": options.reps,
            "instances": options.instances,
        },
        "method": _method(options),
        "durations": durations,
    }
    out = args.out or _results_path(date, options.quick)
    report.save(out, run_info, figures)
    print(report.render(run_info, figures))
    print(f"[bench] results: {out} ({durations['total']:.0f} s)", file=sys.stderr)
    return 0


def compare(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench compare", description="Two runs' figures side by side."
    )
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    print(report.compare(args.a, args.b))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["compare"]:
        return compare(arguments[1:])
    if arguments[:1] == ["soak"]:
        from bench import soak

        return soak.main(arguments[1:])
    return run(arguments)
