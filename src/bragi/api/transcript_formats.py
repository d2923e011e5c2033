"""Rendering a transcript in the five OpenAI response formats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from bragi.audio.subtitles import to_srt, to_vtt
from bragi.backends.protocol import Segment, TranscriptionInfo
from bragi.languages import language_name

__all__ = ["render_transcript"]


def _segment_body(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "seek": segment.seek,
        "start": round(segment.start, 3),
        "end": round(segment.end, 3),
        "text": segment.text,
        "tokens": list(segment.tokens),
        "temperature": segment.temperature,
        "avg_logprob": segment.avg_logprob,
        "compression_ratio": segment.compression_ratio,
        "no_speech_prob": segment.no_speech_prob,
    }


def render_transcript(
    segments: Sequence[Segment],
    info: TranscriptionInfo,
    response_format: str,
    task: Literal["transcribe", "translate"],
    words: bool,
) -> tuple[dict[str, Any] | str, str]:
    """The body and its media type (``application/json`` or ``text/plain``)."""
    text = "".join(segment.text for segment in segments).strip()
    if response_format == "text":
        return text + "\n", "text/plain"
    if response_format == "srt":
        return to_srt(segments), "text/plain"
    if response_format == "vtt":
        return to_vtt(segments), "text/plain"
    usage = {"type": "duration", "seconds": round(info.duration, 3)}
    if response_format == "json":
        return ({"text": text, "usage": usage} if task == "transcribe" else {"text": text}), (
            "application/json"
        )
    body: dict[str, Any] = {
        "task": task,
        "language": "english" if task == "translate" else language_name(info.language),
        "duration": round(info.duration, 3),
        "text": text,
        "segments": [_segment_body(segment) for segment in segments],
    }
    if words:
        body["words"] = [
            {"word": word.word, "start": round(word.start, 3), "end": round(word.end, 3)}
            for segment in segments
            for word in (segment.words or ())
        ]
    if task == "transcribe":
        body["usage"] = usage
    return body, "application/json"
