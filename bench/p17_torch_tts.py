"""P17: the torch text-to-speech engines at real size, with random weights, on this machine.

No weights for Qwen3-TTS, F5-TTS or Fish Speech can be fetched here, so each model is
built once at its published size with random weights by the library's own classes, in the
``torch-tts`` environment (:mod:`bench.torch_tts_engines` runs there), and one sentence
("Good morning, how are you today?", the unit Bragi streams in) is timed through the calls
Bragi's engines make. Its time is the time to first audio (each engine makes a whole
sentence at once); its real-time factor is that time ÷ the audio's length (about 2 s).
Lengths are fixed, since random weights never say stop. Only the comparison between the
engines means anything: random weights are as fast as real ones, but the work a real
sentence takes (how many frames, when it stops) is set here, not learned. Not judged.

Opt-in (``--suites p11``): it needs the environment, ``$BRAGI_TORCH_TTS_ENV`` or
``$BRAGI_TEST_ENVS/envs/torch-tts`` (``bragi backend install torch-tts --data-dir DIR``),
and it takes minutes: building the three models (about 5 GB on disk, kept in the models
dir), then one warm-up and the kept rounds per engine.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from bench.context import Context
from bench.machine import usable_cpus
from bench.report import NO_TARGET, Figure, value_figure

__all__ = ["run"]

_SCRIPT = Path(__file__).with_name("torch_tts_engines.py")
_TIMEOUT = 3 * 3600.0


def _environment() -> Path:
    chosen = os.environ.get("BRAGI_TORCH_TTS_ENV")
    if chosen is None and (kept := os.environ.get("BRAGI_TEST_ENVS")):
        chosen = str(Path(kept) / "envs" / "torch-tts")
    python = Path(chosen or "") / "bin" / "python"
    if not chosen or not python.exists():
        raise SystemExit(
            "bench: P17 needs the torch-tts environment: set BRAGI_TORCH_TTS_ENV to it "
            "(bragi backend install torch-tts --data-dir DIR makes DIR/envs/torch-tts)"
        )
    return python


def run(ctx: Context) -> list[Figure]:
    python = _environment()
    rounds = 1 if ctx.options.quick else 3
    models = ctx.models_dir / "bench-torch-tts"
    models.mkdir(parents=True, exist_ok=True)
    ctx.log(f"P17 building (once) and timing the torch TTS engines in {models}")
    done = subprocess.run(
        [str(python), str(_SCRIPT), str(models), str(rounds), str(usable_cpus())],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"P17's engine script failed:\n{done.stderr[-3000:]}")
    figures = []
    for line in done.stdout.splitlines():
        if not line.startswith("{"):
            continue
        result = json.loads(line)
        note = (
            f"{result['engine']}: {result['audio_s']:.2f} s of audio per sentence, loaded in "
            f"{result['load_s']:.1f} s; {rounds} kept round(s) (after a warm-up when more "
            "than one), "
            f"{usable_cpus()} torch threads"
        )
        samples = {"first_audio_s": result["samples"]}
        figures.append(
            value_figure(
                "P17",
                f"{result['id']} first audio",
                "s",
                result["first_audio_s"],
                NO_TARGET,
                samples,
                note,
            )
        )
        figures.append(value_figure("P17", f"{result['id']} RTF", "RTF", result["rtf"], NO_TARGET))
    return figures
