"""P11: a long recording through Bragi ÷ the engine's plain call.

``two_cities.wav`` read four times (177 s, written once as 16 kHz WAV under the models
dir): ``/v1/audio/transcriptions`` (``json``, ``whisper-1``, which decodes audio past 30 s
in batches of 8) ÷ faster-whisper's plain ``WhisperModel.transcribe`` on the same file
(window after window, beam 5, as P1's direct side), interleaved. Both transcripts are
scored (WER against the text read four times). Target <= 0.5 at equal WER (± 0.5 points).
Rounds: one per instance (--quick: one), after one short warm-up request per process.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from bench.assets import recording, word_error_rate
from bench.context import Context
from bench.measure import Measured, cpu_note, interleave, spread_note
from bench.report import Figure, ratio_figure

__all__ = ["REPEATS", "long_recording", "run"]

REPEATS = 4  # two_cities read four times: 177 s
TARGET = "<= 0.5"


def long_recording(models_dir: Path, repeats: int = REPEATS) -> Path:
    """two_cities.wav ``repeats`` times over, as 16 kHz mono 16-bit WAV (written once)."""
    path = models_dir / "bench-audio" / f"two_cities_x{repeats}.wav"
    if path.is_file():
        return path
    from bragi.audio import decode_audio

    _rec, source = recording("two_cities")
    samples = decode_audio(source.read_bytes(), 16_000).samples
    pcm = (np.clip(np.tile(samples, repeats), -1, 1) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with wave.open(str(partial), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(pcm.tobytes())
    partial.replace(path)
    return path


def run(ctx: Context) -> list[Figure]:
    rec, short = recording("two_cities")
    path = long_recording(ctx.models_dir)
    with wave.open(str(path)) as file:
        seconds = file.getnframes() / file.getframerate()
    reference = " ".join([rec.reference] * REPEATS)
    model = ctx.options.stt_model
    texts: dict[str, str] = {}

    def server(index: int) -> Measured:
        instance = ctx.instance(index)
        wall, texts["server"], cpu = instance.server_call(instance.client.transcribe, model, path)
        return wall, cpu

    def direct(index: int) -> Measured:
        wall, cpu, texts["direct"] = ctx.instance(index).direct.call("transcribe", path)
        return wall, cpu

    reps = 1 if ctx.options.quick else ctx.count
    ctx.log(f"P11 two_cities x {REPEATS} ({seconds:.0f} s), {reps} rounds")
    if ctx.warmup("server:stt", "direct:stt"):  # a short request each, not 177 s
        for index in range(ctx.count):
            ctx.instance(index).client.transcribe(model, short)
            ctx.instance(index).direct.call("transcribe", short)
    samples = interleave({"server": server, "direct": direct}, reps, ctx.count, warmup=False)
    server_wer = word_error_rate(reference, texts["server"])
    direct_wer = word_error_rate(reference, texts["direct"])
    notes = [
        "direct: WhisperModel.transcribe, plain (30 s windows one after another)",
        f"WER server {server_wer:.2f} %, direct {direct_wer:.2f} % "
        f"({server_wer - direct_wer:+.2f} points; equal within ± 0.5)",
        cpu_note(samples),
        spread_note(samples, "server") if ctx.local else "",
    ]
    name = f"long recording, two_cities x {REPEATS} {seconds:.0f} s, json"
    figure = ratio_figure("P11", name, "s", samples, TARGET, notes)
    if figure.passed and abs(server_wer - direct_wer) > 0.5:
        figure.passed = False  # faster only counts at the same accuracy
    return [figure]
