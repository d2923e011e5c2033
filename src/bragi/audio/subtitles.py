"""SRT and WebVTT subtitles from transcription segments."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for annotations: protocol.py imports bragi.audio, so a runtime import
    # here would be circular.
    from bragi.backends.protocol import Segment

__all__ = ["to_srt", "to_vtt"]


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
