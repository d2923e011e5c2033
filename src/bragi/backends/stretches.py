"""Transcribing parts of a recording one by one, on the whole recording's clock.

Two requests need it for engines that cannot do it themselves:

* ``chunking_strategy=server_vad`` on an engine without its own VAD settings (Vosk,
  Paraformer, Parakeet, SpeechBrain): the audio is cut where Bragi's Silero VAD
  (:mod:`bragi.backends.vad`) hears speech, with the request's threshold, silence and
  padding, and each stretch is decoded on its own;
* speakers on an engine without word times (Moonshine, SpeechBrain): each speaker's run
  is decoded on its own, so no segment spans two speakers.

Segment and word times are shifted back onto the recording's clock.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence
from importlib.util import find_spec

from bragi.audio.resample import resample
from bragi.audio.types import Audio
from bragi.backends.protocol import (
    Segment,
    SpeakerTurn,
    SpeechToText,
    TranscribeOptions,
    TranscriptionInfo,
    VadRequest,
)
from bragi.backends.vad import (
    SAMPLE_RATE,
    SileroVad,
    VadOptions,
    load_silero_vad,
    silero_model_path,
)

__all__ = [
    "Stretch",
    "silero_available",
    "speaker_runs",
    "speech_stretches",
    "stop_decoding",
    "transcribe_planned",
    "transcribe_stretches",
    "vad_options",
]

Stretch = tuple[float, float]  # start, end in seconds
_PAD = 0.2  # seconds of audio kept on each side of a speaker's run
_SHORTEST = 0.1  # seconds: shorter stretches are not decoded
#: Longest stretch decoded at once: long enough for any engine's context, short enough
#: that a stretch with no pause is still cut (at its quietest frame).
_LONGEST = 30.0


def silero_available() -> bool:
    """Whether Bragi's Silero VAD can run here (onnxruntime and a packaged model)."""
    return find_spec("onnxruntime") is not None and silero_model_path() is not None


@functools.cache
def _silero() -> SileroVad:
    return load_silero_vad()  # one session serves every thread


def vad_options(request: VadRequest, base: VadOptions) -> VadOptions:
    """``base`` with a request's server_vad settings: its threshold, its silence that ends
    speech, its prefix padding (kept on both sides of the speech), and every such pause a
    cut (stretches are not joined)."""
    given = {
        "join": False,
        # Silero needs 0 < threshold < 1; OpenAI allows the ends, which mean "all" and "none"
        "threshold": None if request.threshold is None else min(max(request.threshold, 0.01), 0.99),
        "min_silence_ms": request.silence_ms,
        "speech_pad_ms": request.padding_ms,
    }
    return base.model_copy(update={k: v for k, v in given.items() if v is not None})


def speech_stretches(audio: Audio, request: VadRequest) -> list[Stretch]:
    """Where the Silero VAD hears speech, with the request's settings."""
    clip = resample(audio, SAMPLE_RATE)
    options = vad_options(request, VadOptions(max_segment_s=_LONGEST))
    spans = _silero().spans(clip.samples, options)
    return [(span.start / SAMPLE_RATE, span.end / SAMPLE_RATE) for span in spans]


def speaker_runs(turns: Sequence[SpeakerTurn], duration: float) -> list[Stretch]:
    """Consecutive turns of one speaker joined; each run padded a little, never into the
    next speaker's run, the first from 0 and the last to the end."""
    runs: list[tuple[str, float, float]] = []
    for turn in sorted(turns, key=lambda t: t.start):
        if runs and runs[-1][0] == turn.speaker:
            runs[-1] = (turn.speaker, runs[-1][1], max(runs[-1][2], turn.end))
        else:
            runs.append((turn.speaker, turn.start, turn.end))
    bounds: list[Stretch] = []
    for index, (_speaker, start, end) in enumerate(runs):
        begin = 0.0 if index == 0 else max(start - _PAD, bounds[-1][1])
        stop = duration if index == len(runs) - 1 else min(end + _PAD, runs[index + 1][1])
        bounds.append((begin, max(stop, begin)))
    return bounds


def _intersect(first: Sequence[Stretch], second: Sequence[Stretch]) -> list[Stretch]:
    """The stretches covered by both lists (each sorted, without overlaps)."""
    found, i, j = [], 0, 0
    while i < len(first) and j < len(second):
        start, end = max(first[i][0], second[j][0]), min(first[i][1], second[j][1])
        if end > start:
            found.append((start, end))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return found


def transcribe_stretches(
    engine: SpeechToText, audio: Audio, options: TranscribeOptions, stretches: Sequence[Stretch]
) -> tuple[Iterator[Segment], TranscriptionInfo]:
    """Each stretch transcribed on its own (the first now, so its errors come before any
    reply; the others as the segments are read), numbered and timed on the recording."""
    rate = audio.sample_rate
    parts = [
        (start, audio.samples[round(start * rate) : round(end * rate)])
        for start, end in stretches
        if end - start >= _SHORTEST
    ]
    if not parts:  # no speech: the engine still checks the request and names the language
        nothing, info = engine.transcribe(Audio(audio.samples[:0], rate), options)
        stop_decoding(nothing)
        return iter(()), dataclasses.replace(info, duration=audio.duration)
    first, info = engine.transcribe(Audio(parts[0][1], rate), options)

    def shifted() -> Iterator[Segment]:
        index = 0
        for number, (offset, samples) in enumerate(parts):
            pending = first if number == 0 else engine.transcribe(Audio(samples, rate), options)[0]
            try:
                for segment in pending:
                    yield _shift(segment, index, offset)
                    index += 1
            finally:
                stop_decoding(pending)  # a client that left stops the decoding

    return shifted(), dataclasses.replace(info, duration=audio.duration)


def stop_decoding(segments: Iterator[Segment]) -> None:
    """Stop an engine's lazy decoding now (its generator's ``close``), not when collected."""
    close = getattr(segments, "close", None)
    if callable(close):
        close()


def _shift(segment: Segment, index: int, offset: float) -> Segment:
    words = segment.words
    if words is not None:
        words = tuple(
            dataclasses.replace(w, start=w.start + offset, end=w.end + offset) for w in words
        )
    return dataclasses.replace(
        segment,
        id=index,
        start=segment.start + offset,
        end=segment.end + offset,
        seek=segment.seek + round(offset * 100),
        words=words,
    )


def transcribe_planned(
    engine: SpeechToText,
    audio: Audio,
    options: TranscribeOptions,
    turns: Sequence[SpeakerTurn] | None = None,
) -> tuple[Iterator[Segment], TranscriptionInfo]:
    """The engine over the whole recording, or stretch by stretch where the request needs
    what the engine lacks: its speaker runs (no word times to split segments at), the
    speech the request's server_vad finds (no VAD settings of its own), or both."""
    capabilities = engine.capabilities
    stretches: list[Stretch] | None = None
    if turns is not None and not capabilities.word_timestamps:
        stretches = speaker_runs(turns, audio.duration) or [(0.0, audio.duration)]
    if options.vad is not None and not capabilities.vad:
        speech = speech_stretches(audio, options.vad)
        stretches = speech if stretches is None else _intersect(stretches, speech)
        options = dataclasses.replace(options, vad=None)
    if stretches is None:
        return engine.transcribe(audio, options)
    return transcribe_stretches(engine, audio, options, stretches)
