"""P10: what running an engine in a worker process costs.

Any engine can run in a worker process (``runner: worker``, docs/workers.md): the server
sends the request over a Unix socket, asks for every segment or audio chunk with one
``next`` round trip, and audio crosses as float32 samples. Torch engines always run
there. To see the worker's cost alone, the engines here are torch-free ones, the same
files on both sides: the run's own servers (``runner: auto``, which keeps Piper and
faster-whisper in the server process) against as many more servers whose config differs
only by ``runner: worker`` on every model, the two interleaved round by round with the
direct engine, as the suites they borrow from measure it:

- Piper (``tts-1``) time to first audio, as P3 (the three sentences, mp3 stream);
- Piper throughput, as P4 (mp3 and wav, whole body);
- faster-whisper (``whisper-1``, Whisper base) on beckett, ``json``, as P1, with twice
  P1's rounds.

Every call waits :data:`SETTLE` first (off the clock): on 2 cores a Piper call that
starts right after another process's Piper call is 20-30 ms slower (that process's ONNX
Runtime threads spin on after their run), so back to back the side that follows the
direct call pays more than the other; a pause puts every call on the same footing.

The figure is worker ÷ in-process (median of the per-round ratios), not judged:
performance.md sets no target. The notes give the CPU-time ratio (server, its worker
process and the client), the difference per request in ms, and each variant ÷ the direct
engine.
"""

from __future__ import annotations

from bench.assets import recording
from bench.context import Context
from bench.instances import Side
from bench.measure import SETTLE, cpu_note, median, paired_ratios, spread_note
from bench.p1_stt_overhead import transcription_rounds
from bench.p3_tts_first_audio import FORMAT, first_audio_rounds
from bench.p4_tts_throughput import FORMATS, throughput_rounds, tts_text
from bench.report import NO_TARGET, Figure, ratio_figure
from bench.server import with_runner

__all__ = ["VARIANT", "run"]

#: the servers' name in the samples (the run's own servers, in-process, are ``server``)
VARIANT = "worker"
BASELINE = "in-process"


def run(ctx: Context) -> list[Figure]:
    if not ctx.local:
        raise SystemExit("bench: P10 compares two configs of the bench's own bragi serve")
    ctx.log(f"P10 starting {ctx.count} x bragi serve with runner: worker on every model")
    worker = ctx.instances.variant(VARIANT, with_runner(ctx.config, "worker"))
    try:
        figures = []
        if model := ctx.options.tts_models.get("piper"):
            figures.append(_first_audio(ctx, model, worker))
            figures.extend(_throughput(ctx, model, worker))
        figures.append(_transcription(ctx, worker))
        return figures
    finally:
        ctx.instances.stop_variant(VARIANT)


def _seconds(samples: dict[str, list[float]], name: str) -> list[float]:
    """Wall seconds per request of one side (throughput: back from audio s/s)."""
    audio = samples.get(f"{name}_audio_s")
    if audio is None:
        return samples[name]
    return [a / rate for a, rate in zip(audio, samples[name], strict=True)]


def _figure(
    name: str,
    unit: str,
    samples: dict[str, list[float]],
    notes: list[str],
    side: str = VARIANT,
    over: str = "server",
) -> Figure:
    """Worker ÷ in-process, with the CPU-time ratio, the difference per request, each
    variant ÷ the direct engine, then ``notes``."""
    direct = {k: median(paired_ratios(samples[k], samples["direct"])) for k in (side, over)}
    apart = [w - s for w, s in zip(_seconds(samples, side), _seconds(samples, over), strict=True)]
    notes = [
        cpu_note(samples, side, over),
        f"worker - in-process {1000 * median(apart):+.1f} ms per request",
        f"÷ direct engine: worker {direct[side]:.3f}, in-process {direct[over]:.3f}",
        *notes,
    ]
    name = f"worker ÷ in-process, {name}"
    return ratio_figure(
        "P10", name, unit, samples, NO_TARGET, notes, side=side, over=over, baseline=BASELINE
    )


def _first_audio(ctx: Context, model: str, worker: Side) -> Figure:
    ctx.log(f"P10 Piper first audio ({model}), worker and in-process")
    servers = {VARIANT: worker, "server": ctx.instance}
    reps, samples = first_audio_rounds(ctx, "piper", model, servers, SETTLE)
    name = f"TTS first audio, Piper, 3 sentences, {FORMAT} stream"
    return _figure(name, "s", samples, [f"{reps} rounds"])


def _throughput(ctx: Context, model: str, worker: Side) -> list[Figure]:
    _text, label = tts_text(ctx, "piper")
    ctx.log(f"P10 Piper throughput ({model}), {label}, worker and in-process")
    servers = {VARIANT: worker, "server": ctx.instance}
    samples = throughput_rounds(ctx, "piper", model, servers, SETTLE)
    return [
        _figure(
            f"TTS throughput, Piper, {label}, {fmt}",
            "audio s/s",
            samples,
            ["direct: wav" if fmt == "mp3" else ""],
            side=f"{VARIANT}_{fmt}",
            over=f"server_{fmt}",
        )
        for fmt in FORMATS
    ]


def _transcription(ctx: Context, worker: Side) -> Figure:
    rec, path = recording("beckett")
    ctx.log(f"P10 STT {ctx.options.stt_model}, {rec.label}, json, worker and in-process")
    servers = {VARIANT: worker, "server": ctx.instance}
    # twice the rounds: a 1.2 s transcription varies by 10 % and more from call to call
    # here, far more than the few ms the worker may add
    reps = 2 * ctx.options.reps
    samples, _texts = transcription_rounds(ctx, path, False, servers, SETTLE, reps)
    notes = [f"{reps} rounds", spread_note(samples, VARIANT), spread_note(samples, "server")]
    return _figure(f"STT {ctx.options.stt_model}, {rec.label}, json", "s", samples, notes)
