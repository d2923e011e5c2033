"""Diarization error rate and cost: ``python -m bench.diarization MODEL_DIR``.

MODEL_DIR holds a segmentation and an embedding ONNX model (tests/realmodels builds one
from PyPI wheels; sherpa-onnx's release files work too). The audio is a conversation of two
human readers from moonshine-voice (two_cities.wav, clone-test.wav) with known turn times,
and the Endgame dialogue (cost only: no reference). Cost is the diarizer's time over the
starter Whisper's (base, int8, CPU) on the same audio, measured side by side in one run.
"""

from __future__ import annotations

import argparse
import importlib.resources
import itertools
import time
from pathlib import Path

import numpy as np

from bragi.audio import Audio, decode_audio
from bragi.backends.protocol import DiarizeOptions, TranscribeOptions
from bragi.backends.registry import BackendRegistry
from bragi.diarization.backend import BACKEND, DiarizationOptions

RATE = 16_000
ASSETS = Path(str(importlib.resources.files("moonshine_voice"))) / "assets"


def _conversation() -> tuple[Audio, list[tuple[str, float, float]]]:
    dickens = decode_audio((ASSETS / "two_cities.wav").read_bytes(), RATE).samples
    stranger = decode_audio((ASSETS / "clone-test.wav").read_bytes(), RATE).samples
    parts = [
        ("D", dickens[int(0.6 * RATE) : int(8.3 * RATE)]),
        ("S", stranger),
        ("D", dickens[int(8.4 * RATE) : int(12.9 * RATE)]),
        ("S", stranger[: int(2.3 * RATE)]),
        ("D", dickens[int(13.2 * RATE) : int(20.4 * RATE)]),
    ]
    gap = np.zeros(int(0.6 * RATE), np.float32)
    pieces, truth, position = [], [], 0.0
    for speaker, part in parts:
        truth.append((speaker, position, position + len(part) / RATE))
        pieces += [part, gap]
        position += (len(part) + len(gap)) / RATE
    return Audio(np.concatenate(pieces), RATE), truth


def _frames(turns: list[tuple[str, float, float]], total: float) -> list[set[str]]:
    count = int(total * 100)
    frames: list[set[str]] = [set() for _ in range(count)]
    for speaker, start, end in turns:
        for i in range(int(start * 100), min(count, int(end * 100))):
            frames[i].add(speaker)
    return frames


def der(
    reference: list[tuple[str, float, float]],
    found: list[tuple[str, float, float]],
    total: float,
    collar: float = 0.0,
) -> float:
    """Frame-level DER (10 ms): missed + false alarm + confusion over reference speech,
    with the best one-to-one speaker mapping; ``collar`` seconds around each reference
    boundary are not scored."""
    ref, hyp = _frames(reference, total), _frames(found, total)
    skip = set()
    for _, start, end in reference:
        for edge in (start, end):
            skip.update(range(int((edge - collar) * 100), int((edge + collar) * 100)))
    names = sorted({s for _, _, s in [(0, 0, t[0]) for t in found]})
    speakers = sorted({t[0] for t in reference})
    best = None
    for perm in itertools.permutations(names + [None] * len(speakers), len(speakers)):
        mapping = {h: r for r, h in zip(speakers, perm, strict=False) if h is not None}
        error = speech = 0
        for i, (r, h) in enumerate(zip(ref, hyp, strict=False)):
            if i in skip:
                continue
            mapped = {mapping.get(x, x) for x in h}
            speech += len(r)
            error += max(len(r), len(mapped)) - len(r & mapped)
        best = error / max(speech, 1) if best is None else min(best, error / max(speech, 1))
    return best or 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--whisper", type=Path, help="a faster-whisper model dir (whisper base)")
    parser.add_argument("--window-shift", type=float, default=0.25)
    args = parser.parse_args()
    diarizer = BACKEND.load(
        args.model_dir, "cpu", DiarizationOptions(window_shift=args.window_shift)
    )
    whisper = None
    if args.whisper:
        backend = BackendRegistry.from_entry_points().get("faster-whisper")
        whisper = backend.load(args.whisper, "cpu", backend.options_model())
    audio, truth = _conversation()
    endgame = decode_audio((ASSETS / "endgame_nagg_nell.wav").read_bytes(), RATE)
    print("| audio | seconds | diarize s | whisper s | cost | DER | DER (0.25 s collar) |")
    print("|---|---|---|---|---|---|---|")
    for name, clip, reference in (("two readers", audio, truth), ("Endgame", endgame, None)):
        started = time.perf_counter()
        turns = diarizer.diarize(clip, DiarizeOptions())
        spent = time.perf_counter() - started
        whisper_s = None
        if whisper is not None:
            started = time.perf_counter()
            segments, _ = whisper.transcribe(clip, TranscribeOptions(word_timestamps=True))
            list(segments)
            whisper_s = time.perf_counter() - started
        found = [(t.speaker, t.start, t.end) for t in turns]
        scores = ("-", "-")
        if reference is not None:
            scores = (
                f"{der(reference, found, clip.duration):.1%}",
                f"{der(reference, found, clip.duration, 0.25):.1%}",
            )
        cost = f"{spent / whisper_s:.0%}" if whisper_s else "-"
        ws = f"{whisper_s:.2f}" if whisper_s else "-"
        row = [name, f"{clip.duration:.1f}", f"{spent:.2f}", ws, cost, *scores]
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
