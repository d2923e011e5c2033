"""``python -m bench soak``: hours of mixed load on one ``bragi serve``, watched for leaks.

The starter set is served (auth on, as the other suites start it, but with the default
keep-alive); a seeded mix of transcriptions (plain and streamed), speech (audio and
SSE), a second TTS model that admin calls unload and load again, cloned voices made and
deleted, and listings is sent at a steady rate (open loop: each call leaves at its
time, whatever the ones before are doing). Every ``--sample-every`` seconds the server's
resident memory, open file descriptors and threads are read from ``/proc`` (its worker
processes included). The report: calls and errors by status, p50/p99 per operation, the
samples over time, and the targets (no 5xx, no call without an answer, RSS growth under
5 % after the warm-up, no growth in descriptors or threads).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.assets import recording
from bench.cli import RESULTS_DIR, _default_models_dir
from bench.direct import materialize_starter
from bench.machine import load_average, machine_info
from bench.server import BragiServer
from bench.soak_ops import OPERATIONS, Call, Load, schedule

__all__ = ["main"]

#: Targets (issue 17): RSS growth after the warm-up, in percent.
RSS_GROWTH_TARGET = 5.0
#: After the load: the last sample is taken this long after every call has ended.
IDLE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # seconds since the load began
    calls: int
    rss_mb: float  # the server and its workers
    fds: int
    threads: int


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


def _status(pid: int) -> tuple[float, int]:
    """(VmRSS in MB, threads) of one process."""
    rss, threads = 0.0, 0
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024 / 1e6
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def measure(pid: int, at: float, calls: int) -> Sample:
    """The server process and its children (engine workers), summed."""
    rss, threads, fds = 0.0, 0, 0
    for process in (pid, *_children(pid)):
        try:
            process_rss, process_threads = _status(process)
            process_fds = len(os.listdir(f"/proc/{process}/fd"))
        except OSError:  # a worker that just exited
            continue
        rss, threads, fds = rss + process_rss, threads + process_threads, fds + process_fds
    return Sample(at, calls, round(rss, 1), fds, threads)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def windows(samples: list[Sample], warm_up: float) -> tuple[list[Sample], list[Sample]]:
    """The samples of the first and the last quarter after the warm-up. A single sample
    catches whatever is in flight (a model mid-load, a request's socket and thread), so
    the targets compare windows: RSS by median, descriptors and threads by minimum, what
    the server holds when least is going on."""
    after = [s for s in samples if s.at >= warm_up] or samples[-1:]
    quarter = max(1, len(after) // 4)
    return after[:quarter], after[-quarter:]


def summarize(calls: list[Call], samples: list[Sample], warm_up: float) -> dict[str, Any]:
    by_operation: dict[str, dict[str, Any]] = {}
    for name in sorted({call.operation for call in calls}):
        mine = [call for call in calls if call.operation == name]
        ok = [call.seconds for call in mine if 200 <= call.status < 300]
        by_operation[name] = {
            "calls": len(mine),
            "statuses": dict(sorted(Counter(str(call.status) for call in mine).items())),
            "p50_s": round(_percentile(ok, 0.50), 3),
            "p99_s": round(_percentile(ok, 0.99), 3),
        }
    statuses = Counter(call.status for call in calls)
    first, last = windows(samples, warm_up)

    def window(part: list[Sample]) -> dict[str, Any]:
        return {
            "from_min": round(part[0].at / 60, 1),
            "to_min": round(part[-1].at / 60, 1),
            "rss_mb": round(_median([s.rss_mb for s in part]), 1),
            "fds": min(s.fds for s in part),
            "threads": min(s.threads for s in part),
        }

    warm, end = window(first), window(last)
    growth = 100.0 * (end["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"] if warm["rss_mb"] else 0.0
    return {
        "calls": len(calls),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors": sum(v for k, v in statuses.items() if k >= 500),
        "no_answer": statuses.get(0, 0),
        "operations": by_operation,
        "start": asdict(samples[0]),
        "warm": warm,
        "end": end,
        "idle_end": asdict(samples[-1]),
        "rss_growth_after_warm_up_percent": round(growth, 2),
        "rss_max_mb": max(s.rss_mb for s in samples if s.at >= warm_up) if last else 0.0,
    }


def verdicts(summary: dict[str, Any]) -> list[tuple[str, str, bool]]:
    warm, end = summary["warm"], summary["end"]
    growth = summary["rss_growth_after_warm_up_percent"]
    span = f"(minutes {warm['from_min']}-{warm['to_min']} vs {end['from_min']}-{end['to_min']})"
    return [
        ("5xx answers", str(summary["server_errors"]), summary["server_errors"] == 0),
        ("calls without an answer", str(summary["no_answer"]), summary["no_answer"] == 0),
        (
            f"RSS growth after warm-up, median (< {RSS_GROWTH_TARGET:g} %) {span}",
            f"{warm['rss_mb']:.0f} -> {end['rss_mb']:.0f} MB ({growth:+.1f} %)",
            growth < RSS_GROWTH_TARGET,
        ),
        (
            "open descriptors, least (no growth)",
            f"{warm['fds']} -> {end['fds']}",
            end["fds"] <= warm["fds"],
        ),
        (
            "threads, least (no growth)",
            f"{warm['threads']} -> {end['threads']}",
            end["threads"] <= warm["threads"],
        ),
    ]


def render(run: dict[str, Any]) -> str:
    summary = run["summary"]
    lines = [
        f"# Soak: {run['minutes']:g} min at {run['rate']:g} operations/s "
        f"({run['date']}, {run['machine']['cores']} cores, {run['machine']['cpu_model']})",
        "",
        "| target | measured | pass |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {value} | {'yes' if ok else 'NO'} |" for name, value, ok in verdicts(summary)
    ]
    lines += [
        "",
        f"{summary['calls']} calls; statuses {summary['statuses']}; at rest after the load: "
        f"{summary['idle_end']['rss_mb']:.0f} MB, {summary['idle_end']['fds']} descriptors, "
        f"{summary['idle_end']['threads']} threads (at start, before any call: "
        f"{summary['start']['rss_mb']:.0f} MB, {summary['start']['fds']}, "
        f"{summary['start']['threads']})",
        "",
        "| operation | calls | statuses | p50 | p99 |",
        "|---|---|---|---|---|",
    ]
    for name, op in summary["operations"].items():
        statuses = ", ".join(f"{k}: {v}" for k, v in op["statuses"].items())
        lines.append(
            f"| {name} | {op['calls']} | {statuses} | {op['p50_s']:.3f} s | {op['p99_s']:.3f} s |"
        )
    lines += ["", "| minute | calls | RSS MB | fds | threads |", "|---|---|---|---|---|"]
    samples = run["samples"]
    shown = samples[:: max(1, len(samples) // 16)]
    if shown[-1] is not samples[-1]:
        shown.append(samples[-1])
    for sample in shown:
        lines.append(
            f"| {sample['at'] / 60:.1f} | {sample['calls']} | {sample['rss_mb']:.0f} | "
            f"{sample['fds']} | {sample['threads']} |"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the load (30)")
    parser.add_argument(
        "--rate", type=float, default=0.5, help="operations started per second (0.5)"
    )
    parser.add_argument(
        "--warm-up", type=float, default=5.0, help="minutes before RSS is judged (5)"
    )
    parser.add_argument(
        "--sample-every", type=float, default=30.0, help="seconds between samples (30)"
    )
    parser.add_argument("--seed", type=int, default=17, help="the operation mix's seed (17)")
    parser.add_argument(
        "--models-dir", type=Path, default=None, help="where the starter set is assembled"
    )
    parser.add_argument("--out", type=Path, help="results JSON (default bench/results/soak-...)")
    return parser


def run_load(
    load: Load, pid: int, minutes: float, rate: float, every: float, seed: int
) -> list[Sample]:
    draw = schedule(seed)
    samples = [measure(pid, 0.0, 0)]
    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(every):
            at = time.monotonic() - load.calls.started
            samples.append(measure(pid, at, len(load.calls.snapshot())))
            print(f"[soak] {at / 60:5.1f} min {samples[-1]}", file=sys.stderr)

    watcher = threading.Thread(target=sampler, name="soak-sampler", daemon=True)
    watcher.start()
    end = load.calls.started + minutes * 60
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="soak") as pool:
        for index in range(int(minutes * 60 * rate)):
            due = load.calls.started + index / rate
            if due >= end:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            pool.submit(draw(), load)
    stop.set()
    watcher.join()
    time.sleep(IDLE_SECONDS)  # every call has ended: what the server holds at rest
    samples.append(measure(pid, time.monotonic() - load.calls.started, len(load.calls.snapshot())))
    return samples


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    models_dir = args.models_dir or _default_models_dir()
    print(f"[soak] assembling the starter models in {models_dir}", file=sys.stderr)
    materialize_starter(models_dir)
    _, speech = recording("beckett")
    voice_sample = speech.with_name("clone-test.wav")  # moonshine-voice's cloning reference
    date = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="bragi-soak-") as tmp:
        server = BragiServer(Path(tmp) / "data", models_dir)
        server.start()
        try:
            server.wait_for("/health/ready", timeout=300)
            load = Load(server.base_url, server.api_key(), speech, voice_sample)
            try:
                samples = run_load(
                    load, server.pid, args.minutes, args.rate, args.sample_every, args.seed
                )
            finally:
                load.close()
            calls = load.calls.snapshot()
            alive = server.process is not None and server.process.poll() is None
        finally:
            log = server.log()
            server.stop()
    run: dict[str, Any] = {
        "date": date.strftime("%Y-%m-%d %H:%M UTC"),
        "minutes": args.minutes,
        "rate": args.rate,
        "warm_up_minutes": args.warm_up,
        "seed": args.seed,
        "mix": {name: weight for name, (_, weight) in OPERATIONS.items()},
        "machine": machine_info(),
        "load_average_end": load_average(),
        "server_alive_at_end": alive,
        "summary": summarize(calls, samples, args.warm_up * 60),
        "samples": [asdict(s) for s in samples],
        "server_log_tail": log[-4000:],
    }
    out = args.out or RESULTS_DIR / f"soak-{date:%Y-%m-%d}-{socket.gethostname()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(run, indent=1) + "\n")
    print(render(run))
    print(f"[soak] results: {out}", file=sys.stderr)
    return 0 if alive and all(ok for _, _, ok in verdicts(run["summary"])) else 1
