"""Diarization inside a transcription request: who asked for it, running the diarizer, and
the body of ``response_format=diarized_json`` and the speaker-labelled formats."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from anyio import to_thread

from bragi.audio import Audio
from bragi.audio.resample import resample
from bragi.audio.subtitles import to_srt, to_vtt
from bragi.backends.protocol import (
    DiarizeOptions,
    KnownSpeaker,
    ModelKind,
    Segment,
    SpeakerDiarizer,
    SpeakerTurn,
    TranscriptionInfo,
)
from bragi.diarization import DiarizedSegment, SpeakerLabels, attribute_speakers
from bragi.diarization.attribution import speaker_of
from bragi.errors import InvalidRequestError
from bragi.models.manager import ModelManager

__all__ = [
    "diarize_audio",
    "diarized_body",
    "diarized_segments",
    "label_verbose",
    "require_diarizer",
    "speaker_subtitles",
    "transcribe_by_turns",
]


def require_diarizer(manager: ModelManager) -> str:
    """The diarization model's alias, or a 400 saying how to get one."""
    served = manager.diarizer()
    if served is None:
        raise InvalidRequestError(
            "This server has no speaker-diarization model. Pull one with `bragi pull "
            "pyannote-segmentation-3.0` and restart, or configure a model of kind "
            "diarization (docs/diarization.md).",
            param="response_format",
            code="diarization_unavailable",
        )
    return served.alias


async def diarize_audio(
    manager: ModelManager,
    audio: Audio,
    known: tuple[KnownSpeaker, ...],
    num_speakers: int | None,
) -> list[SpeakerTurn]:
    """Run the diarization model on ``audio`` (leased like any model)."""
    lease = await manager.acquire(require_diarizer(manager), ModelKind.DIARIZATION)
    try:
        engine = lease.engine
        assert isinstance(engine, SpeakerDiarizer)
        rate = engine.capabilities.sample_rate
        clip = audio if audio.sample_rate == rate else resample(audio, rate)
        known = tuple(
            k
            if k.reference.sample_rate == rate
            else KnownSpeaker(k.name, resample(k.reference, rate))
            for k in known
        )
        options = DiarizeOptions(num_speakers=num_speakers, known_speakers=known)
        turns: list[SpeakerTurn] = await to_thread.run_sync(engine.diarize, clip, options)
    finally:
        await lease.release()
    return turns


def diarized_segments(
    segments: Sequence[Segment], turns: Sequence[SpeakerTurn]
) -> list[DiarizedSegment]:
    labels = SpeakerLabels(turns)
    return [piece for segment in segments for piece in attribute_speakers(segment, turns, labels)]


def _segment_event(index: int, piece: DiarizedSegment) -> dict[str, Any]:
    return {
        "type": "transcript.text.segment",
        "id": f"seg_{index}",
        "start": round(piece.start, 3),
        "end": round(piece.end, 3),
        "text": piece.text.strip(),
        "speaker": piece.speaker,
    }


def diarized_body(
    pieces: Sequence[DiarizedSegment], info: TranscriptionInfo, usage: dict[str, Any]
) -> dict[str, Any]:
    """OpenAI's ``TranscriptionDiarized``: the text, and one segment per speaker turn."""
    kept = [p for p in pieces if p.text.strip()]
    return {
        "task": "transcribe",
        "duration": round(info.duration, 3),
        "text": "".join(p.text for p in kept).strip(),
        "segments": [_segment_event(i, p) for i, p in enumerate(kept)],
        "usage": usage,
    }


def speaker_subtitles(pieces: Sequence[DiarizedSegment], response_format: str) -> str:
    """srt cues as ``A: text``, vtt cues with WebVTT's voice tag ``<v A>text``."""
    if response_format == "vtt":
        cues = [_cue(p, f"<v {p.speaker}>{p.text.strip()}") for p in pieces]
        return to_vtt(cues)
    return to_srt([_cue(p, f"{p.speaker}: {p.text.strip()}") for p in pieces])


def _cue(piece: DiarizedSegment, text: str) -> Segment:
    return dataclasses.replace(piece.source, start=piece.start, end=piece.end, text=text)


def label_verbose(body: dict[str, Any], turns: Sequence[SpeakerTurn]) -> dict[str, Any]:
    """verbose_json with a ``speaker`` on each segment (who holds most of it) and word."""
    labels = SpeakerLabels(turns)
    for segment in body.get("segments", []):
        speaker = speaker_of(segment["start"], segment["end"], turns)
        segment["speaker"] = labels(speaker) if speaker is not None else None
    for word in body.get("words", []):
        speaker = speaker_of(word["start"], word["end"], turns)
        word["speaker"] = labels(speaker) if speaker is not None else None
    return body


def _speaker_runs(turns: Sequence[SpeakerTurn], duration: float) -> list[tuple[float, float]]:
    """Consecutive turns of one speaker joined; each run ends where the next begins."""
    runs: list[tuple[str, float, float]] = []
    for turn in sorted(turns, key=lambda t: t.start):
        if runs and runs[-1][0] == turn.speaker:
            runs[-1] = (turn.speaker, runs[-1][1], max(runs[-1][2], turn.end))
        else:
            runs.append((turn.speaker, turn.start, turn.end))
    bounds: list[tuple[float, float]] = []
    for index, (_speaker, start, end) in enumerate(runs):
        begin = 0.0 if index == 0 else max(start - 0.2, bounds[-1][1])
        stop = duration if index == len(runs) - 1 else min(end + 0.2, runs[index + 1][1])
        bounds.append((begin, max(stop, begin)))
    return bounds


def transcribe_by_turns(
    engine: Any, audio: Audio, options: Any, turns: Sequence[SpeakerTurn]
) -> tuple[Iterator[Segment], TranscriptionInfo]:
    """For engines without word times: each speaker's run transcribed on its own, so no
    segment spans two speakers. Segment times are on the whole recording's clock."""
    runs = _speaker_runs(turns, audio.duration) or [(0.0, audio.duration)]
    rate = audio.sample_rate
    first = audio.samples[int(runs[0][0] * rate) : int(runs[0][1] * rate)]
    segments, info = engine.transcribe(Audio(first, rate), options)

    def all_runs() -> Iterator[Segment]:
        index = 0
        pending: Iterator[Segment] | None = segments
        for number, (start, end) in enumerate(runs):
            if number:
                part = audio.samples[int(start * rate) : int(end * rate)]
                if len(part) < rate // 10:
                    continue
                pending, _ = engine.transcribe(Audio(part, rate), options)
            assert pending is not None
            for segment in pending:
                yield dataclasses.replace(
                    segment,
                    id=index,
                    start=segment.start + start,
                    end=segment.end + start,
                    seek=segment.seek + round(start * 100),
                )
                index += 1

    full = TranscriptionInfo(info.language, audio.duration, info.language_probability)
    return all_runs(), full
