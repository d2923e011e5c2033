"""P15: live transcription over ``/v1/realtime``.

One spoken turn (A Tale of Two Cities, 0.9-4.85 s: "It was the best of times, it was the
worst of times", 3.4 s of speech) and a second of silence go to the server's Realtime
endpoint at real pace, 100 ms per append, with its server VAD; interleaved round by round
with the same turn (the same samples, as a WAV) through ``/v1/audio/transcriptions`` on
the same server:

- **stop → final ÷ offline**: seconds from ``speech_stopped`` to ``completed`` (as the
  client sees them) ÷ the offline transcription of the turn. Target <= 1.0 on CPU: the
  partial decodes have already decoded the turn (Bragi decodes it whole when the silence
  that ends it begins, and keeps that decode when the turn does end there).
- **speech start → first partial**: seconds from the moment the speech in the audio went
  out to the first ``delta`` before ``speech_stopped`` (rounds without one are counted in
  the note). Not judged.
- **CPU per turn, partials ÷ none** (local servers only): the CPU seconds of server and
  client for a live turn on the run's servers ÷ the same on as many more servers with
  ``realtime: {partials: false}``. Not judged: the price of the partial text.

With ``--base-url`` the same rounds run against that server (its model in the URL too,
which speaches needs); the CPU figure is skipped.
"""

from __future__ import annotations

import json
import tempfile
import wave
from pathlib import Path

import numpy as np

from bench.assets import recording, word_error_rate
from bench.context import Context
from bench.instances import Side
from bench.live import RATE, LiveTurn, live_turn
from bench.measure import Measured, interleave, median, paired_ratios
from bench.report import NO_TARGET, Figure, ratio_figure, value_figure
from bench.server import starter_set

__all__ = ["run"]

CLIP = (0.9, 4.85)  # seconds of two_cities.wav
SPEECH_AT = 1.22 - 0.9  # where the speech begins in the clip
TEXT = "It was the best of times, it was the worst of times,"
VARIANT = "no-partials"


def _clip() -> tuple[bytes, Path]:
    """The turn as 24 kHz 16-bit PCM (with a second of silence) and as a WAV file."""
    from bragi.audio import decode_audio

    _rec, path = recording("two_cities")
    samples = decode_audio(path.read_bytes(), RATE).samples
    turn = samples[int(CLIP[0] * RATE) : int(CLIP[1] * RATE)]
    pcm = (np.clip(turn, -1, 1) * 32767).astype("<i2").tobytes()
    wav_path = Path(tempfile.mkdtemp(prefix="bragi-p15-")) / "turn.wav"
    with wave.open(str(wav_path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm)
    return pcm + bytes(RATE * 2), wav_path


def run(ctx: Context) -> list[Figure]:
    pcm, wav_path = _clip()
    model = ctx.options.stt_model
    outside = not ctx.local
    turns: list[LiveTurn] = []
    texts: dict[str, str] = {}

    def live(side: Side, keep: bool) -> object:
        def call(index: int) -> Measured:
            instance = side(index)
            key = instance.client.openai.api_key
            _wall, turn, cpu = instance.server_call(
                live_turn, instance.client.base_url, key, model, pcm, model_in_url=outside
            )
            if keep:
                turns.append(turn)
            texts["live"] = turn.text
            return turn.stop_to_final(), cpu

        return call

    def offline(index: int) -> Measured:
        instance = ctx.instance(index)
        wall, texts["offline"], cpu = instance.server_call(
            instance.client.transcribe, model, wav_path
        )
        return wall, cpu

    ctx.log("P15 live turn vs the same turn offline")
    samples = interleave(
        {"live": live(ctx.instance, True), "offline": offline},
        ctx.options.reps,
        ctx.count,
        ctx.warmup("server:stt", "server:live"),
    )
    turns = turns[-ctx.options.reps :]  # the kept rounds, not the warm-up
    notes = [
        f"WER live {100 * word_error_rate(TEXT, texts['live']):.1f} %, "
        f"offline {100 * word_error_rate(TEXT, texts['offline']):.1f} %",
    ]
    figures = [
        ratio_figure(
            "P15",
            "live stop → final ÷ offline, 3.4 s turn",
            "s",
            samples,
            "<= 1.0",
            notes,
            side="live",
            over="offline",
            baseline="offline",
        )
    ]
    partials = [turn.first_partial(SPEECH_AT) for turn in turns]
    found = [p for p in partials if p is not None]
    figures.append(
        value_figure(
            "P15",
            "speech start → first partial",
            "s",
            median(found) if found else None,
            NO_TARGET,
            {"first_partial": found},
            f"{len(found)} of {len(partials)} turns had text before speech_stopped",
        )
    )
    if not outside:
        figures.append(_cpu(ctx, pcm, model))
    return figures


def _cpu(ctx: Context, pcm: bytes, model: str) -> Figure:
    ctx.log(f"P15 starting {ctx.count} x bragi serve with realtime partials off")
    models = json.loads(ctx.config)["models"] if ctx.config else starter_set()
    config = {"models": models, "realtime": {"partials": False}}  # JSON is YAML
    quiet = ctx.instances.variant(VARIANT, json.dumps(config, indent=2) + "\n")

    def turn_cpu(side: Side) -> object:
        def call(index: int) -> Measured:
            instance = side(index)
            key = instance.client.openai.api_key
            _wall, _turn, cpu = instance.server_call(
                live_turn, instance.client.base_url, key, model, pcm
            )
            assert cpu is not None
            return cpu

        return call

    try:
        samples = interleave(
            {"partials": turn_cpu(ctx.instance), VARIANT: turn_cpu(quiet)},
            ctx.options.reps,
            ctx.count,
        )
    finally:
        ctx.instances.stop_variant(VARIANT)
    ratios = paired_ratios(samples["partials"], samples[VARIANT])
    note = (
        f"CPU seconds per turn {median(samples['partials']):.2f} with partials, "
        f"{median(samples[VARIANT]):.2f} without"
    )
    figure = ratio_figure(
        "P15",
        "CPU per live turn, partials ÷ none",
        "s",
        samples,
        NO_TARGET,
        [note],
        side="partials",
        over=VARIANT,
        baseline="no partials",
    )
    figure.samples["ratio"] = ratios
    return figure
