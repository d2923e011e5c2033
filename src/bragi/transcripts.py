"""Transcription, shared by every front end (the HTTP API, the command line, live
protocols): starting an engine on decoded audio, and the transcript in OpenAI's five
response formats (json, text, verbose_json, srt, vtt).

Silence is not an error: like OpenAI's endpoint, audio with no samples or only digital
silence gets an empty transcript (the engine is not even started), so a dictation
client that sends a quiet moment gets text ``""`` instead of an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

from bragi.audio.decode import is_silent
from bragi.audio.types import Audio
from bragi.backends.protocol import SpeechToText, TranscribeOptions
from bragi.languages import language_name
from bragi.types import Segment, TranscriptionInfo

__all__ = ["render_transcript", "start_transcription", "to_srt", "to_vtt"]


def start_transcription(
    engine: SpeechToText, audio: Audio, options: TranscribeOptions
) -> tuple[Iterator[Segment], TranscriptionInfo]:
    """The engine's lazy segments and what it found, or none for silent audio."""
    if is_silent(audio):
        language = "en" if options.task == "translate" else options.language or "en"
        return iter(()), TranscriptionInfo(language=language, duration=audio.duration)
    return engine.transcribe(audio, options)


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


# --- subtitles ---------------------------------------------------------------


def _timestamp(seconds: float, separator: str) -> str:
    """``HH:MM:SS<sep>mmm``; hours grow past two digits rather than wrap."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_text(text: str) -> str:
    # A blank line ends a cue and "-->" starts a timing line in both formats, so
    # neither may appear inside the text.
    lines = (line.strip() for line in text.strip().splitlines())
    return "\n".join(line for line in lines if line).replace("-->", "->")


def _cues(segments: Iterable[Segment], separator: str) -> list[str]:
    cues = []
    for segment in segments:
        text = _cue_text(segment.text)
        if not text:  # an empty cue is noise to a player, and some parsers choke on it
            continue
        start = _timestamp(segment.start, separator)
        end = _timestamp(max(segment.end, segment.start), separator)
        cues.append(f"{start} --> {end}\n{text}\n")
    return cues


def to_srt(segments: Iterable[Segment]) -> str:
    """SubRip: numbered cues from 1, ``HH:MM:SS,mmm`` times, a blank line between cues."""
    cues = _cues(segments, ",")
    return "\n".join(f"{index}\n{cue}" for index, cue in enumerate(cues, start=1))


def to_vtt(segments: Iterable[Segment]) -> str:
    """WebVTT: the ``WEBVTT`` header, then ``HH:MM:SS.mmm`` cues separated by blank lines."""
    return "\n".join(["WEBVTT\n", *_cues(segments, ".")])
