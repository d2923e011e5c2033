"""Chunked decoding: what the speech-to-text backends that decode one short window of
audio at a time share (Paraformer on sherpa-onnx, Parakeet on onnx-asr, SpeechBrain).

They report the start time of each token, so they need the same three things around
them: reading an ONNX file's metadata
without loading it (sherpa-onnx ends the whole process when a key it needs is missing, so
it must be checked first), cutting long audio at pauses, and turning token times into
segments and words. None of it imports an engine library.
"""

from __future__ import annotations

import mmap
import zlib
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self, TypeVar

import numpy as np
from pydantic import ConfigDict, Field, field_validator, model_validator

from bragi.audio.types import Audio, Samples
from bragi.backends.checks import check_transcription
from bragi.backends.language_guess import guess_language
from bragi.backends.protocol import (
    BackendOptions,
    Segment,
    SttCapabilities,
    TranscribeOptions,
    TranscriptionInfo,
    Word,
)
from bragi.backends.support import cut_at_quietest
from bragi.devices import usable_cpus
from bragi.errors import EngineError
from bragi.languages import language_code

SAMPLE_RATE = 16_000  # both chunked engines take 16 kHz mono
#: What a model of several languages reports before its text is judged.
UNKNOWN = "unknown"
_GUESS_SEGMENTS, _GUESS_CHARS = 3, 40

__all__ = [
    "SAMPLE_RATE",
    "ChunkedOptions",
    "OnnxHeader",
    "Token",
    "check_request",
    "ensure_open",
    "in_batches",
    "make_segment",
    "plan_chunks",
    "read_onnx_header",
    "reported_language",
    "settle_language",
    "speech_chunks",
    "usable_cpus",
]

T = TypeVar("T")

_MAX_STRING = 1 << 20  # a metadata value (CMVN vectors are a few kB)


# --- ONNX metadata without loading the model -----------------------------------------


@dataclass(frozen=True, slots=True)
class OnnxHeader:
    """An ONNX model's metadata and graph input/output names."""

    metadata: dict[str, str]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


def read_onnx_header(path: Path, *, graph: bool = False) -> OnnxHeader:
    """Read ``metadata_props`` (and, with ``graph``, the I/O names) of an ONNX file.

    Walks the protobuf wire format of ``ModelProto`` and skips every other field by its
    length, so the weights are never read: milliseconds for a 1 GB model, where
    ``onnx.load`` or an InferenceSession parse it all. Raises ``OSError`` or ``ValueError``.
    """
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        metadata: dict[str, str] = {}
        names: dict[int, list[str]] = {11: [], 12: []}
        seen: set[int] = set()
        for field, start, end in _fields(buf, 0, len(buf)):
            seen.add(field)
            if field == 14 and end >= 0:  # metadata_props: StringStringEntryProto
                entry = {f: _string(buf, s, e) for f, s, e in _fields(buf, start, end) if e >= 0}
                metadata[entry.get(1, "")] = entry.get(2, "")
            elif field == 7 and end >= 0 and graph:  # GraphProto: input 11, output 12
                for g_field, g_start, g_end in _fields(buf, start, end):
                    if g_field in names and g_end >= 0:
                        value_info = _fields(buf, g_start, g_end)
                        name = next((_string(buf, s, e) for f, s, e in value_info if f == 1), "")
                        names[g_field].append(name)
    if not {1, 7} <= seen:  # ir_version and graph: every ONNX model has both
        raise ValueError(f"{path.name} is not an ONNX model")
    return OnnxHeader(metadata, tuple(names[11]), tuple(names[12]))


def _fields(buf: mmap.mmap, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, value start, value end) of each field; end is -1 for scalar fields."""
    while pos < end:
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
            yield key >> 3, pos, -1
            continue
        if wire == 2:
            length, pos = _varint(buf, pos)
        elif wire in (1, 5):
            length = 8 if wire == 1 else 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
        if pos + length > end:
            raise ValueError("truncated protobuf field")
        yield key >> 3, pos, pos + length if wire == 2 else -1
        pos += length


def _varint(buf: mmap.mmap, pos: int) -> tuple[int, int]:
    result = shift = 0
    while shift < 64:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise ValueError("varint too long")


def _string(buf: mmap.mmap, start: int, end: int) -> str:
    if end - start > _MAX_STRING:
        raise ValueError("metadata value too long")
    return buf[start:end].decode("utf-8")


# --- long audio ------------------------------------------------------------------------

_FRAME_SECONDS = 0.02
_SILENT_DB = -60.0  # a recording whose loudest frames are quieter than this has no speech


def speech_chunks(
    samples: Samples, rate: int, max_seconds: float, *, pause: float = 0.5, pad: float = 0.15
) -> list[tuple[int, int]]:
    """Sample ranges with speech, cut at pauses, each at most ``max_seconds`` long.

    An energy detector: a 20 ms frame is speech when it is loud for this recording (within
    35 dB of its peak, and 6 dB over its noise floor when it has one). Pauses of ``pause``
    seconds or more end a chunk; a longer stretch is cut at its quietest frame in the second
    half of the window. The one place a VAD model (Silero) would plug in.
    """
    hop = max(1, round(rate * _FRAME_SECONDS))
    count = len(samples) // hop
    if count < 3:
        return [(0, len(samples))] if len(samples) else []
    frames = samples[: count * hop].astype(np.float64).reshape(count, hop)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    peak, floor = float(np.percentile(level, 99)), float(np.percentile(level, 10))
    if peak < _SILENT_DB:
        return []
    threshold = peak - 35  # speech stays within 35 dB of the recording's loudest frames
    if peak - floor >= 15:  # a quiet tenth well under the rest: the room's noise floor
        threshold = max(threshold, floor + 6)
    loud = np.flatnonzero(level > threshold)
    if loud.size == 0:
        return []
    gap, margin = round(pause / _FRAME_SECONDS), round(pad / _FRAME_SECONDS)
    breaks = np.flatnonzero(np.diff(loud) > gap)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]]) + 1
    longest = max(2, round(max_seconds / _FRAME_SECONDS))
    chunks: list[tuple[int, int]] = []
    for first, last in zip(starts, ends, strict=True):
        begin, stop = max(0, int(first) - margin), min(count, int(last) + margin)
        chunks += cut_at_quietest(begin, stop, level, longest)
    tail = len(samples)  # the last frame's chunk takes the samples after it too
    return [(b * hop, tail if e == count else e * hop) for b, e in chunks]


# --- segments and words from token times -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """One decoded token as it appears in the text, with its start in seconds."""

    text: str
    start: float
    starts_word: bool
    id: int | None = None
    logprob: float | None = None


def make_segment(
    index: int, start: float, end: float, text: str, tokens: Sequence[Token], timed: bool
) -> Segment:
    """A segment over ``[start, end]``; words only when the engine gave token times."""
    logprobs = [t.logprob for t in tokens if t.logprob is not None]
    encoded = text.encode("utf-8")
    return Segment(
        id=index,
        seek=round(start * 100),  # Whisper counts seek in 10 ms feature frames
        start=start,
        end=end,
        text=text,
        tokens=tuple(t.id for t in tokens if t.id is not None),
        avg_logprob=float(np.mean(logprobs)) if logprobs else 0.0,
        # Whisper's measure of repetition: how well the text compresses
        compression_ratio=len(encoded) / len(zlib.compress(encoded)) if encoded else 0.0,
        words=_words(tokens, start, end) if timed else None,
    )


def _words(tokens: Sequence[Token], start: float, end: float) -> tuple[Word, ...]:
    """Group tokens into words; a word ends where the next begins (or the segment ends)."""
    groups: list[tuple[str, float]] = []
    last = start
    for token in tokens:
        last = min(max(token.start, last), end)  # monotonic and inside the segment
        if token.starts_word or not groups:
            groups.append((token.text, last))
        else:
            groups[-1] = (groups[-1][0] + token.text, groups[-1][1])
    stops = [s for _, s in groups[1:]] + [end]
    return tuple(Word(w, s, stop) for (w, s), stop in zip(groups, stops, strict=True) if w.strip())


# --- options and requests --------------------------------------------------------------


class ChunkedOptions(BackendOptions):
    """``options:`` both backends take; each adds its runtime's own."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    threads: int | None = Field(default=None, ge=1)
    """Threads per decode; every core this process may use when unset."""
    languages: tuple[str, ...] | None = None
    """ISO 639-1 codes the model speaks (the catalog gives them); else read from its vocabulary."""
    language: str | None = None
    """The language reported when a request names none (these models do not say)."""
    max_chunk_seconds: float = Field(default=20.0, ge=2, le=300)
    """Longest stretch decoded at once; longer speech is cut at its quietest point."""

    @field_validator("languages")
    @classmethod
    def _codes(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(_iso_code(v) for v in value)

    @field_validator("language")
    @classmethod
    def _code(cls, value: str | None) -> str | None:
        return None if value is None else _iso_code(value)

    @model_validator(mode="after")
    def _spoken(self) -> Self:
        if self.language and self.languages and self.language not in self.languages:
            raise ValueError(f"language {self.language!r} is not one of languages")
        return self


def _iso_code(value: str) -> str:
    code = language_code(value)
    if code is None:
        raise ValueError(f"unknown language {value!r}; use an ISO 639-1 code such as 'en'")
    return code


def reported_language(requested: str | None, option: str | None, spoken: frozenset[str]) -> str:
    """The request's language, else the configured one, else the model's only one; else
    :data:`UNKNOWN` until the text says (:func:`settle_language`)."""
    if requested:
        return language_code(requested) or requested
    if option:
        return option
    return next(iter(spoken)) if len(spoken) == 1 else UNKNOWN


def settle_language(
    segments: Generator[Segment, None, None],
    info: TranscriptionInfo,
    languages: Sequence[str] | None,
) -> tuple[Generator[Segment, None, None], TranscriptionInfo]:
    """For a model of several languages asked for none: decode the first pieces now (up to
    a few words' worth) and report the language their text is in
    (:func:`~bragi.backends.language_guess.guess_language`); the segments go on from there."""
    if info.language != UNKNOWN:
        return segments, info
    taken: list[Segment] = []
    for segment in segments:
        taken.append(segment)
        if len(taken) >= _GUESS_SEGMENTS or sum(len(s.text) for s in taken) >= _GUESS_CHARS:
            break
    language = guess_language(" ".join(s.text for s in taken), languages) or UNKNOWN
    return _chained(taken, segments), replace(info, language=language)


def _chained(
    first: list[Segment], rest: Generator[Segment, None, None]
) -> Generator[Segment, None, None]:
    try:
        yield from first
        yield from rest
    finally:
        rest.close()


def check_request(options: TranscribeOptions, capabilities: SttCapabilities, engine: str) -> None:
    """Refuse, before any decoding, a translation or a language the model does not speak."""
    check_transcription(options, capabilities, f"This {engine} model")


def ensure_open(model: T | None, engine: str) -> T:
    """The engine's model, or an error saying the engine has been closed."""
    if model is None:
        raise EngineError(f"this {engine} engine has been closed")
    return model


def in_batches(chunks: Sequence[tuple[int, int]], size: int) -> Iterator[list[tuple[int, int]]]:
    """The chunks, ``size`` at a time, in order."""
    for first in range(0, len(chunks), max(1, size)):
        yield list(chunks[first : first + size])


def plan_chunks(
    engine: str,
    audio: Audio,
    options: TranscribeOptions,
    capabilities: SttCapabilities,
    engine_options: ChunkedOptions,
) -> tuple[list[tuple[int, int]], TranscriptionInfo]:
    """What a chunked engine does before decoding: refuse what it cannot do, check the
    audio, and cut it at pauses. Decoding then goes chunk by chunk, lazily."""
    check_request(options, capabilities, engine)
    rate = capabilities.sample_rate
    if audio.sample_rate != rate:
        raise EngineError(f"{engine} needs {rate} Hz audio, got {audio.sample_rate}")
    languages = capabilities.languages or frozenset()
    language = reported_language(options.language, engine_options.language, languages)
    chunks = speech_chunks(audio.samples, rate, engine_options.max_chunk_seconds)
    return chunks, TranscriptionInfo(language=language, duration=audio.duration)
