"""Server-sent transcription events: ``transcript.text.delta`` per decoded segment (with
``logprobs`` when asked), for diarized requests a ``transcript.text.segment`` after each
speaker turn's deltas, then ``transcript.text.done`` with the text and usage."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from anyio import CancelScope, to_thread

from bragi.api.diarized import segment_event
from bragi.api.sse import sse_event
from bragi.backends.protocol import Segment, SpeakerTurn, TranscriptionInfo
from bragi.backends.stretches import stop_decoding
from bragi.diarization import SpeakerLabels, attribute_speakers
from bragi.models.manager import Lease

__all__ = ["StreamRequest", "TranscriptStream", "logprobs_of"]


@dataclass(frozen=True, slots=True)
class StreamRequest:
    logprobs: bool = False
    languages: bool = False  # the reply names the language (the request had languages[])
    turns: Sequence[SpeakerTurn] | None = None  # diarized: segment events too


def logprobs_of(segments: Sequence[Segment]) -> list[dict[str, Any]]:
    """One entry per word: Whisper's probability of the word's tokens, as a log."""
    entries = []
    for segment in segments:
        for word in segment.words or ():
            probability = word.probability if word.probability is not None else 1.0
            entries.append(
                {
                    "token": word.word,
                    "logprob": round(math.log(max(probability, 1e-12)), 6),
                    "bytes": list(word.word.encode("utf-8")),
                }
            )
    return entries


class TranscriptStream:
    """An SSE transcription's events; its decoding and lease are let go of once, however
    the response ends (finished, the client gone, or its body never started)."""

    def __init__(
        self,
        lease: Lease,
        segments: Iterator[Segment],
        info: TranscriptionInfo,
        request: StreamRequest,
    ):
        self.lease = lease
        self.segments = segments
        self.info = info
        self.request = request
        self._closed = False

    async def events(self) -> AsyncIterator[bytes]:
        request, segments, info = self.request, self.segments, self.info
        pieces: list[str] = []
        all_logprobs: list[dict[str, Any]] = []
        labels = SpeakerLabels(request.turns or ())
        count = 0
        try:
            while (segment := await to_thread.run_sync(next, segments, None)) is not None:
                parts = (
                    attribute_speakers(segment, request.turns, labels)
                    if request.turns is not None
                    else None
                )
                for index, text, words_of in _deltas(segment, parts):
                    delta = text.lstrip() if not pieces else text
                    if not delta:
                        continue
                    pieces.append(delta)
                    event: dict[str, Any] = {"type": "transcript.text.delta", "delta": delta}
                    if request.logprobs:
                        event["logprobs"] = logprobs_of([words_of])
                        all_logprobs += event["logprobs"]
                    if parts is not None:
                        event["segment_id"] = f"seg_{count}"
                    yield sse_event(event)
                    if parts is not None:
                        yield sse_event(segment_event(count, parts[index]))
                        count += 1
            done: dict[str, Any] = {"type": "transcript.text.done", "text": "".join(pieces)}
            if request.logprobs:
                done["logprobs"] = all_logprobs
            if request.languages:
                done["languages"] = [{"code": info.language}]
            done["usage"] = {"type": "duration", "seconds": round(info.duration, 3)}
            yield sse_event(done)
        finally:
            with CancelScope(shield=True):
                await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            # A client that left stops the decoding (in a thread: closing it may wait for
            # the piece being decoded).
            await to_thread.run_sync(stop_decoding, self.segments)
        finally:
            await self.lease.release()


def _deltas(segment: Segment, parts: list[Any] | None) -> Iterator[tuple[int, str, Segment]]:
    """(part index, text, a segment holding its words) for each delta to send."""
    if parts is None:
        yield 0, segment.text, segment
        return
    for index, part in enumerate(parts):
        holder = Segment(
            id=segment.id, start=part.start, end=part.end, text=part.text, words=part.words
        )
        yield index, part.text, holder
