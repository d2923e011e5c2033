"""faster-whisper's batched pipeline for long audio, cut into Whisper's usual segments.

``BatchedInferencePipeline`` cuts the audio at pauses (faster-whisper's Silero VAD) into
chunks and decodes ``batch_size`` of them at once. On 2 CPU cores a 177 s
recording then takes about 0.7 of the time (and CPU) of the plain, window-after-window
decode at the same word error rate (docs/benchmarks.md, P11). A recording of one window (30 s or
less) gains nothing, so it keeps the plain decoder.

Chunks are at most 28 s, not the window's 30: a chunk that fills the window loses its
last words ("in short" of two_cities: 1.7 % WER with 30 s chunks, 0 % with 28 s, for
Whisper tiny.en and base; the same number of chunks and time). The pipeline decodes
without timestamp tokens: with them it dropped words at chunk edges (7.8 % WER against
0 % on two_cities read four times). So a chunk comes back as one segment of up to 28 s.
When segment times matter (``TranscribeOptions.segment_timestamps``: verbose_json, srt,
vtt), words are aligned and each chunk is cut after every sentence, which gives segments
like the plain decoder's; the words themselves are returned only when asked for.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from bragi.backends.protocol import TranscribeOptions

__all__ = [
    "CHUNK_SECONDS",
    "SENTENCE_ENDS",
    "batched_segments",
    "decode_clips",
    "failed",
    "shifted",
    "split_at_sentences",
]

SAMPLE_RATE = 16_000
#: Longest chunk, in seconds (see above).
CHUNK_SECONDS = 28
#: A word ending with one of these ends a segment (Latin and CJK full stops).
SENTENCE_ENDS = (".", "?", "!", "\u3002", "\uff1f", "\uff01")

#: When a chunk has failed. Whisper's compression-ratio limit is 2.4 for its windows; a
#: chunk's text, without timestamps and up to 28 s long, compresses better: correct but
#: repetitive speech (two_cities: 2.21-2.40 per chunk, against 2.37 for the plain
#: decoder's window) crossed 2.4, and decoding two such chunks of six again cost 60 %
#: more time for the same words. A sentence said three times over is 2.64, a loop more.
COMPRESSION_RATIO_THRESHOLD = 2.6
LOG_PROB_THRESHOLD = -1.0  # faster-whisper's own, as the no-speech one
NO_SPEECH_THRESHOLD = 0.6

Encode = Callable[[str], list[int]]
#: the plain decoder on [start, end) seconds of the audio: its segments, times in the audio
Redecode = Callable[[float, float], Iterable[Any]]


def batched_segments(
    pipeline: Any,
    samples: Any,
    kwargs: dict[str, Any],
    batch_size: int,
    options: TranscribeOptions,
    encode: Encode,
    redecode: Redecode | None = None,
) -> tuple[Iterator[Any], Any]:
    """Start the batched pipeline on ``samples``; (faster-whisper segments, its info).

    ``kwargs`` are the plain call's arguments. The pipeline always runs its VAD and
    decodes at the first temperature only: it has no fallback. So a chunk that fails
    Whisper's own checks (it repeats itself, or is unlikely, and is not silence) is given
    to ``redecode`` (start, end in seconds), the plain decoder at the fallback's next
    temperatures, when the request has a fallback.
    """
    # log-probabilities are read from the words, so a request for them keeps the words
    wants_words = options.word_timestamps or options.logprobs
    timed = options.segment_timestamps or wants_words
    batched = kwargs | {
        "vad_filter": True,
        "chunk_length": CHUNK_SECONDS,
        "batch_size": batch_size,
        "without_timestamps": True,
        "word_timestamps": timed,
    }
    raw, info = pipeline.transcribe(samples, **batched)
    chunks: Iterator[Any] = iter(raw)
    if redecode is not None and len(kwargs.get("temperature") or ()) > 1:
        chunks = _with_fallback(chunks, redecode)
    if not timed:
        return chunks, info
    return split_at_sentences(chunks, encode, keep_words=wants_words), info


def failed(segment: Any) -> bool:
    """Whisper's reasons to decode again at a higher temperature: a text that repeats
    itself, or an unlikely one that is not silence (thresholds above)."""
    if segment.compression_ratio > COMPRESSION_RATIO_THRESHOLD:
        return True
    unlikely = segment.avg_logprob < LOG_PROB_THRESHOLD
    return bool(unlikely and segment.no_speech_prob <= NO_SPEECH_THRESHOLD)


def _with_fallback(chunks: Iterator[Any], redecode: Redecode) -> Iterator[Any]:
    for chunk in chunks:
        if not failed(chunk):
            yield chunk
            continue
        low, high = chunk.start, chunk.end  # the padding must not reach the next chunk
        for segment in redecode(low, high):
            words = segment.words
            if words is not None:
                words = [_clamped(word, low, high) for word in words]
            yield replace(_clamped(segment, low, high), words=words)


def _clamped(item: Any, low: float, high: float) -> Any:
    """A segment or word with its times inside [low, high]."""
    start = min(max(item.start, low), high)
    return replace(item, start=start, end=min(max(item.end, start), high))


def split_at_sentences(chunks: Iterable[Any], encode: Encode, *, keep_words: bool) -> Iterator[Any]:
    """Each chunk segment (with words) as one segment per sentence, times from its words.

    Tokens are the sentence's text encoded again (the pipeline's are the chunk's);
    ``avg_logprob``, ``no_speech_prob``, ``seek`` and ``temperature`` are the chunk's.
    """
    for chunk in chunks:
        words = list(chunk.words or ())
        if not words:
            yield replace(chunk, words=None if not keep_words else chunk.words)
            continue
        sentence: list[Any] = []
        for index, word in enumerate(words):
            sentence.append(word)
            if index + 1 < len(words) and not word.word.strip().endswith(SENTENCE_ENDS):
                continue
            text = "".join(w.word for w in sentence)
            yield replace(
                chunk,
                start=sentence[0].start,
                end=sentence[-1].end,
                text=text,
                tokens=encode(text),
                compression_ratio=_compression_ratio(text),
                words=sentence if keep_words else None,
            )
            sentence = []


def _compression_ratio(text: str) -> float:
    """Whisper's measure of repetition: how well the text compresses."""
    encoded = text.encode("utf-8")
    return len(encoded) / len(zlib.compress(encoded)) if encoded else 0.0


def decode_clips(
    pipeline: Any,
    clips: Sequence[Any],
    kwargs: dict[str, Any],
    options: TranscribeOptions,
    encode: Encode,
) -> list[list[Any]]:
    """Several requests' short clips (16 kHz samples, 30 s at most each) as one batch:
    each clip is one chunk of the pipeline; the segments of each, times from its start."""
    offsets = np.cumsum([0, *(len(clip) for clip in clips)]) / SAMPLE_RATE
    spans = [{"start": a, "end": b} for a, b in itertools.pairwise(offsets.tolist())]
    kwargs = kwargs | {"clip_timestamps": spans}
    raw, _info = batched_segments(
        pipeline, np.concatenate(clips), kwargs, len(clips), options, encode
    )
    per_clip: list[list[Any]] = [[] for _ in clips]
    for segment in raw:
        index = int(np.searchsorted(offsets, (segment.start + segment.end) / 2, "right")) - 1
        index = min(max(index, 0), len(clips) - 1)
        per_clip[index].append(shifted(segment, -offsets[index]))
    return per_clip


def shifted(segment: Any, seconds: float) -> Any:
    """A segment (and its words) moved by ``seconds``."""
    words = segment.words
    if words is not None:
        words = [replace(w, start=w.start + seconds, end=w.end + seconds) for w in words]
    return replace(segment, start=segment.start + seconds, end=segment.end + seconds, words=words)
