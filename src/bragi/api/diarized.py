"""Diarization inside a transcription request: who asked for it, running the diarizer, and
the body of ``response_format=diarized_json`` and the speaker-labelled formats."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from anyio import to_thread

from bragi.audio import Audio
from bragi.audio.resample import resample
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
from bragi.diarization.availability import require_diarizer
from bragi.models.manager import ModelManager
from bragi.transcripts import to_srt, to_vtt

__all__ = [
    "diarize_audio",
    "diarized_body",
    "diarized_segments",
    "label_verbose",
    "segment_event",
    "speaker_subtitles",
]


async def diarize_audio(
    manager: ModelManager,
    audio: Audio,
    known: tuple[KnownSpeaker, ...],
    num_speakers: int | None,
) -> list[SpeakerTurn]:
    """Run the diarization model on ``audio`` (leased like any model)."""
    lease = await manager.acquire(require_diarizer(manager).alias, ModelKind.DIARIZATION)
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


def segment_event(index: int, piece: DiarizedSegment) -> dict[str, Any]:
    """OpenAI's ``transcript.text.segment``: in ``diarized_json`` and as a stream event."""
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
        "segments": [segment_event(i, p) for i, p in enumerate(kept)],
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
