"""Figures, the markdown table, the JSON results, and ``compare``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.machine import ENGINE_PACKAGES
from bench.measure import median, paired_ratios

__all__ = [
    "NO_TARGET",
    "Figure",
    "compare",
    "figure_order",
    "load",
    "ratio_figure",
    "render",
    "save",
    "value_figure",
]

#: the target of a figure that is reported but not judged (e.g. random-weight models)
NO_TARGET = "—"

ScoreKind = Literal["ratio", "value", "difference"]
_UNITS = {
    "s": "{:.3f} s",
    "req/s": "{:.3f} req/s",
    "audio s/s": "{:.1f} audio s/s",
    "MB": "{:.1f} MB",
    "KB": "{:.1f} KB",
    "% WER": "{:.2f} % WER",
    "% DER": "{:.1f} % DER",
    "RTF": "{:.4f} RTF",
}


@dataclass
class Figure:
    """One row of the table.

    ``score`` is the number judged against ``target``: the ratio server ÷ direct
    (``ratio``), the server's own number (``value``: sizes, start-up time) or the
    difference server - direct (``difference``, in ``unit``'s points). ``baseline`` names
    what the ``direct`` number is when it is not the direct engine (P10: the server with
    the engine in-process).
    """

    id: str
    name: str
    unit: str
    bragi: float | None
    direct: float | None
    score: float | None
    score_kind: ScoreKind
    target: str
    passed: bool | None
    samples: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""
    baseline: str = ""

    @property
    def key(self) -> str:
        return f"{self.id} {self.name}"


def judge(score: float | None, target: str) -> bool | None:
    """``<= x``, ``>= x`` or ``± x`` (absolute difference) against ``score``; None when
    there is no score or no target (:data:`NO_TARGET`)."""
    if score is None or target == NO_TARGET:
        return None
    op, _, number = target.partition(" ")
    limit = float(number.split()[0])
    if op == "<=":
        return score <= limit
    if op == ">=":
        return score >= limit
    if op == "±":
        return abs(score) <= limit
    raise ValueError(f"unknown target {target!r}")


def ratio_figure(
    id: str,
    name: str,
    unit: str,
    samples: dict[str, list[float]],
    target: str,
    notes: Iterable[str] = (),
    *,
    side: str = "server",
    over: str = "direct",
    baseline: str = "",
) -> Figure:
    """The usual speed figure from interleaved samples of ``side`` (the server) and
    ``over`` (the direct engine, or the ``baseline`` it names): the median of the
    per-round ratios, judged against ``target``; empty notes are dropped."""
    ratios = paired_ratios(samples[side], samples[over])
    score = median(ratios)
    return Figure(
        id=id,
        name=name,
        unit=unit,
        bragi=median(samples[side]),
        direct=median(samples[over]),
        score=score,
        score_kind="ratio",
        target=target,
        passed=judge(score, target),
        samples=samples | {"ratio": ratios},
        note="; ".join(n for n in notes if n),
        baseline=baseline,
    )


def value_figure(
    id: str,
    name: str,
    unit: str,
    value: float | None,
    target: str,
    samples: dict[str, list[float]] | None = None,
    note: str = "",
) -> Figure:
    """A figure judged on Bragi's own number (a size, a start-up time): no direct side."""
    return Figure(
        id=id,
        name=name,
        unit=unit,
        bragi=value,
        direct=None,
        score=value,
        score_kind="value",
        target=target,
        passed=judge(value, target),
        samples=samples or {},
        note=note,
    )


def figure_order(id: str) -> tuple[int, str]:
    """Sort key of a figure id: P1, P2, ... P9, P10 (the stable sort keeps suite order
    within an id)."""
    number = id.lstrip("Pp")
    return (int(number), id) if number.isdigit() else (1 << 30, id)


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return _UNITS.get(unit, "{:.3f} " + unit).format(value)


def _score(figure: Figure) -> str:
    if figure.score is None:
        return "—"
    if figure.score_kind == "ratio":
        return f"{figure.score:.3f}"
    if figure.score_kind == "difference":
        return f"{figure.score:+.2f} pp"
    return _value(figure.score, figure.unit)


def _result(passed: bool | None) -> str:
    return {True: "pass", False: "**FAIL**", None: "n/a"}[passed]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def table(figures: list[Figure]) -> str:
    lines = [
        _row(["figure", "Bragi", "direct engine", "ratio", "target", "pass/fail"]),
        "|---|--:|--:|--:|---|---|",
    ]
    for f in sorted(figures, key=lambda f: figure_order(f.id)):
        ratio = "—" if f.score_kind == "value" else _score(f)
        lines.append(
            _row(
                [
                    f.key,
                    _value(f.bragi, f.unit),
                    _value(f.direct, f.unit) + (f" ({f.baseline})" if f.baseline else ""),
                    ratio,
                    f.target,
                    _result(f.passed),
                ]
            )
        )
    return "\n".join(lines)


def header(run: dict[str, Any]) -> str:
    machine = run["machine"]
    versions = machine["versions"]
    engines = ", ".join(
        f"{name} {versions[name]}" for name in ENGINE_PACKAGES if versions.get(name)
    )
    load = run.get("load_average") or {}
    loads = " → ".join(f"{load[k][0]:.2f}" for k in ("start", "end") if load.get(k) is not None)
    others = run.get("other_processes_cores")
    noise = f"; 1-min load average {loads}" if loads else ""
    if others is not None:
        noise += f"; other processes kept {others:.2f} of {machine['cores']} cores busy"
        if str(run.get("server", "")).startswith("http"):
            noise += " (the server under test among them)"
    lines = [
        f"### Bragi benchmark, {run['date']} ({run['mode']})",
        "",
        f"- machine: `{machine['host']}`, {machine['cores']} cores ({machine['cpu_model']}), "
        f"{machine['platform']}{noise}",
        f"- Python {machine['python']}; bragi {versions.get('bragi')}; {engines}; "
        f"openai {versions.get('openai')}",
        f"- server: {run['server']}; STT model `{run['settings']['stt_model']}`, TTS "
        + ", ".join(f"`{m}` ({e})" for e, m in run["settings"]["tts_models"].items()),
        f"- method: {run['method']}",
    ]
    if run.get("durations"):
        total = run["durations"].get("total", 0.0)
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in run["durations"].items() if k != "total")
        lines.append(f"- wall time: {total:.0f} s ({parts})")
    return "\n".join(lines)


def render(run: dict[str, Any], figures: list[Figure]) -> str:
    notes = [
        f"- {f.key}: {f.note}" for f in sorted(figures, key=lambda f: figure_order(f.id)) if f.note
    ]
    text = header(run) + "\n\n" + table(figures) + "\n"
    if notes:
        text += "\nNotes:\n" + "\n".join(notes) + "\n"
    return text


def save(path: Path, run: dict[str, Any], figures: list[Figure]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = run | {"figures": [asdict(f) for f in figures]}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def load(path: Path) -> tuple[dict[str, Any], list[Figure]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    figures = [Figure(**f) for f in data.pop("figures")]
    return data, figures


def compare(path_a: Path, path_b: Path) -> str:
    """Side by side: each figure's judged number in run A and run B, and B - A."""
    run_a, figures_a = load(path_a)
    run_b, figures_b = load(path_b)
    by_key_a = {f.key: f for f in figures_a}
    by_key_b = {f.key: f for f in figures_b}
    keys = list(by_key_a) + [k for k in by_key_b if k not in by_key_a]
    lines = [
        f"A: `{path_a.name}` ({run_a['date']}, {run_a['mode']}, {run_a['machine']['host']}, "
        f"{run_a['server']})",
        f"B: `{path_b.name}` ({run_b['date']}, {run_b['mode']}, {run_b['machine']['host']}, "
        f"{run_b['server']})",
        "",
        _row(["figure", "A", "B", "B - A", "target", "A", "B"]),
        "|---|--:|--:|--:|---|---|---|",
    ]
    for key in sorted(keys, key=lambda k: figure_order(k.split(" ")[0])):
        a, b = by_key_a.get(key), by_key_b.get(key)
        some = a or b
        assert some is not None
        delta = "—"
        if a is not None and b is not None and a.score is not None and b.score is not None:
            delta = f"{b.score - a.score:+.3f}"
        lines.append(
            _row(
                [
                    key,
                    _score(a) if a else "—",
                    _score(b) if b else "—",
                    delta,
                    some.target,
                    _result(a.passed) if a else "—",
                    _result(b.passed) if b else "—",
                ]
            )
        )
    return "\n".join(lines) + "\n"
