"""The Paraformer backend on tiny random models in sherpa-onnx's real layout, real speech.

No Paraformer weights are on PyPI, so the models come from ``tinymodels.paraformer``: the
real inputs, outputs and metadata, random weights. Their text is noise; these tests check
that sherpa-onnx's real loader takes them through Bragi's backend, and what comes out.
"""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import onnx
import pytest
from pydantic import ValidationError

from bragi.audio import Audio, decode_audio
from bragi.backends.chunked import read_onnx_header, speech_chunks
from bragi.backends.faster_whisper import BACKEND as WHISPER
from bragi.backends.paraformer import BACKEND, ParaformerEngine, ParaformerOptions, _tokens
from bragi.backends.parakeet import BACKEND as PARAKEET
from bragi.backends.protocol import ModelKind, TranscribeOptions
from bragi.backends.registry import BackendRegistry
from bragi.errors import EngineError, ModelUnavailableError, UnsupportedCapabilityError
from speech import SpeechSample
from tinymodels import write_paraformer, write_parakeet
from tinymodels.checks import assert_well_formed

pytestmark = pytest.mark.slow

OPTIONS = ParaformerOptions(threads=2)


@pytest.fixture(scope="session")
def paraformer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export with the CIF timestamp outputs, named as the int8 hub files are."""
    return write_paraformer(tmp_path_factory.mktemp("paraformer"), filename="model.int8.onnx")


@pytest.fixture(scope="module")
def engine(paraformer_dir: Path) -> ParaformerEngine:
    return BACKEND.load(paraformer_dir, "cpu", OPTIONS)


@pytest.fixture(scope="module")
def clips(speech: dict[str, SpeechSample]) -> dict[str, Audio]:
    """The recordings decoded to 16 kHz mono by Bragi's own decoder, as the server does."""
    return {name: decode_audio(s.path.read_bytes(), 16_000) for name, s in speech.items()}


def test_backend_declares_itself() -> None:
    assert (BACKEND.name, BACKEND.kind, BACKEND.extra) == (
        "paraformer",
        ModelKind.STT,
        "paraformer",
    )
    assert BACKEND.options_model is ParaformerOptions and BACKEND.is_available()


def test_detects_only_paraformer_exports(paraformer_dir: Path, tmp_path: Path) -> None:
    assert BACKEND.detect(paraformer_dir)
    assert BACKEND.detect(write_paraformer(tmp_path / "fp32", timestamps=False))
    sense_voice = write_paraformer(tmp_path / "sv", metadata={"model_type": "sense_voice_ctc"})
    no_cmvn = write_paraformer(tmp_path / "no-cmvn", metadata={"neg_mean": None})
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "model.onnx").write_bytes(b"\x08\x07" + b"\xff" * 64)
    (tmp_path / "garbage" / "tokens.txt").write_text("</s> 0\n")
    no_tokens = shutil.copytree(paraformer_dir, tmp_path / "no-tokens")
    (no_tokens / "tokens.txt").unlink()
    for directory in (sense_voice, no_cmvn, tmp_path / "garbage", no_tokens, tmp_path / "none"):
        assert not BACKEND.detect(directory), directory.name
    assert not BACKEND.detect(write_parakeet(tmp_path / "parakeet"))


def test_the_registry_picks_paraformer_among_all_backends(paraformer_dir: Path) -> None:
    registry = BackendRegistry([WHISPER, BACKEND, PARAKEET])
    assert registry.detect(paraformer_dir, ModelKind.STT) is BACKEND


def test_options_are_strict() -> None:
    with pytest.raises(ValidationError):
        ParaformerOptions.model_validate({"beam_size": 5})
    with pytest.raises(ValidationError):
        ParaformerOptions(languages=("klingon",))
    assert ParaformerOptions(languages=("Chinese", "EN")).languages == ("zh", "en")


def test_capabilities_come_from_the_files(engine: ParaformerEngine) -> None:
    caps = engine.capabilities
    assert caps.sample_rate == 16_000 and not caps.translate and caps.word_timestamps
    assert caps.languages == {"zh", "en"}  # tokens.txt has Chinese characters


@pytest.mark.parametrize("name", ["beckett", "two_cities"])
def test_segments_and_words_have_real_times(
    engine: ParaformerEngine, clips: dict[str, Audio], name: str
) -> None:
    audio = clips[name]
    segments, info = engine.transcribe(audio, TranscribeOptions(word_timestamps=True))
    assert inspect.isgenerator(segments)  # decoded piece by piece as it is read
    collected = list(segments)
    assert_well_formed(collected, info, audio.duration, words=True, max_chunk=20)
    for segment in collected:  # words are the text cut at token boundaries
        assert "".join(w.word for w in segment.words or ()) == segment.text
    assert info.language == "unknown" and info.language_probability is None


def test_tokens_are_spelled_as_sherpa_onnx_spells_them() -> None:
    symbols = ["the", "wor@@", "ld", "你", "好", "cat"]
    tokens = _tokens(symbols, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], 10.0, {"the": 7})
    assert "".join(t.text for t in tokens) == " the world 你好 cat"
    assert [t.starts_word for t in tokens] == [True, True, False, True, True, True]
    assert [t.start for t in tokens] == [10.0, 10.1, 10.2, 10.3, 10.4, 10.5]
    assert [t.id for t in tokens] == [7, None, None, None, None, None]


def test_long_speech_is_cut_at_pauses(paraformer_dir: Path, clips: dict[str, Audio]) -> None:
    engine = BACKEND.load(paraformer_dir, "cpu", ParaformerOptions(max_chunk_seconds=4))
    segments, info = engine.transcribe(clips["two_cities"], TranscribeOptions())
    collected = list(segments)
    assert_well_formed(collected, info, info.duration, words=True, max_chunk=4)
    assert len(collected) >= 44.4 / 4


def test_an_export_without_timestamps_gives_no_words(
    tmp_path: Path, clips: dict[str, Audio]
) -> None:
    engine = BACKEND.load(write_paraformer(tmp_path, timestamps=False), "cpu", OPTIONS)
    assert not engine.capabilities.word_timestamps
    segments, info = engine.transcribe(clips["beckett"], TranscribeOptions())
    assert_well_formed(list(segments), info, info.duration, words=False, max_chunk=20)


def test_silence_gives_no_segments(engine: ParaformerEngine) -> None:
    segments, info = engine.transcribe(
        Audio(np.zeros(48_000, np.float32), 16_000), TranscribeOptions()
    )
    assert list(segments) == [] and info.duration == 3.0


def test_requests_it_cannot_serve_fail_before_decoding(
    engine: ParaformerEngine, clips: dict[str, Audio]
) -> None:
    audio = clips["beckett"]
    with pytest.raises(UnsupportedCapabilityError, match="translate") as translate:
        engine.transcribe(audio, TranscribeOptions(task="translate"))
    with pytest.raises(UnsupportedCapabilityError, match=r"'de'.*en, zh") as german:
        engine.transcribe(audio, TranscribeOptions(language="de"))
    assert (translate.value.param, german.value.param) == ("model", "language")
    assert translate.value.status_code == german.value.status_code == 400
    _, info = engine.transcribe(audio, TranscribeOptions(language="zh"))
    assert info.language == "zh"
    with pytest.raises(EngineError, match="16000 Hz"):
        engine.transcribe(Audio(audio.samples, 8_000), TranscribeOptions())


def test_languages_and_the_reported_language_can_be_configured(paraformer_dir: Path) -> None:
    options = ParaformerOptions(languages=("zh", "yue", "en"), language="yue")
    engine = BACKEND.load(paraformer_dir, "cpu", options)
    assert engine.capabilities.languages == {"zh", "yue", "en"}
    _, info = engine.transcribe(Audio(np.zeros(1600, np.float32), 16_000), TranscribeOptions())
    assert info.language == "yue"


def test_int8_on_cpu_unless_told_otherwise(tmp_path: Path) -> None:
    write_paraformer(tmp_path, filename="model.onnx")  # fp32, with timestamps
    write_paraformer(tmp_path, filename="model.int8.onnx", timestamps=False)
    assert not BACKEND.load(tmp_path, "cpu", OPTIONS).capabilities.word_timestamps
    fp32 = ParaformerOptions(threads=1, quantized=False)
    assert BACKEND.load(tmp_path, "cpu", fp32).capabilities.word_timestamps


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("no-cmvn", "lacks \\['neg_mean'\\]"),  # sherpa-onnx itself would end the process
        ("bad-cmvn", "malformed"),
        ("short-cmvn", "inconsistent"),
        ("zero-shift", "inconsistent"),
        ("garbage", "not an ONNX model|cannot read"),
        ("truncated", "truncated|cannot read"),
        ("no-eos", "must contain </s>"),
        ("missing", "no Paraformer model"),
    ],
)
def test_broken_models_fail_to_load_with_a_clear_error(
    tmp_path: Path, breakage: str, message: str
) -> None:
    metadata = {
        "no-cmvn": {"neg_mean": None},
        "bad-cmvn": {"inv_stddev": "1,2,x"},
        "short-cmvn": {"neg_mean": "1,2,3"},
        "zero-shift": {"lfr_window_shift": "0"},
    }.get(breakage)
    model = write_paraformer(tmp_path, metadata=metadata) / "model.onnx"
    if breakage == "garbage":
        model.write_bytes(b"not a model at all")
    elif breakage == "truncated":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif breakage == "no-eos":
        (tmp_path / "tokens.txt").write_text("a 0\nb 1\n")
    elif breakage == "missing":
        model.unlink()
    with pytest.raises(ModelUnavailableError, match=message):
        BACKEND.load(tmp_path, "cpu", OPTIONS)


def test_a_closed_engine_refuses_work(paraformer_dir: Path, clips: dict[str, Audio]) -> None:
    engine = BACKEND.load(paraformer_dir, "cpu", OPTIONS)
    segments, _ = engine.transcribe(clips["beckett"], TranscribeOptions())
    engine.close()  # nothing was decoded yet: decoding is lazy
    with pytest.raises(EngineError, match="closed"):
        next(segments)
    with pytest.raises(EngineError, match="closed"):
        engine.transcribe(clips["beckett"], TranscribeOptions())


def test_importing_and_detecting_does_not_import_sherpa_onnx(paraformer_dir: Path) -> None:
    code = (
        "import sys, pathlib\n"
        "from bragi.backends.paraformer import BACKEND\n"
        f"assert BACKEND.is_available() and BACKEND.detect(pathlib.Path({str(paraformer_dir)!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'sherpa_onnx', 'onnx'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- bragi.backends.chunked: the helpers Paraformer shares with Parakeet -----------------


def test_onnx_headers_are_read_without_loading_the_weights(tmp_path: Path) -> None:
    model = write_paraformer(tmp_path / "p") / "model.onnx"
    encoder = write_parakeet(tmp_path / "k") / "encoder-model.onnx"  # weights in .data
    for path in (model, encoder):
        reference = onnx.load(path, load_external_data=False)
        header = read_onnx_header(path, graph=True)
        assert header.metadata == {p.key: p.value for p in reference.metadata_props}
        assert header.inputs == tuple(i.name for i in reference.graph.input)
        assert header.outputs == tuple(o.name for o in reference.graph.output)
    assert read_onnx_header(model).outputs == ()  # the graph is skipped unless asked for
    broken = tmp_path / "broken.onnx"
    for data in (b"", b"plain text, not protobuf", model.read_bytes()[:-100]):
        broken.write_bytes(data)
        with pytest.raises(ValueError):
            read_onnx_header(broken)


def _tone(seconds: float, rate: int = 16_000) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _hush(seconds: float, rate: int = 16_000) -> np.ndarray:
    noise = np.random.default_rng(0).normal(0, 1e-4, round(seconds * rate))
    return noise.astype(np.float32)


def test_speech_is_cut_at_long_pauses_only() -> None:
    parts = [_hush(1), _tone(1), _hush(1), _tone(1), _hush(0.2), _tone(1), _hush(1)]
    chunks = speech_chunks(np.concatenate(parts), 16_000, max_seconds=20)
    assert [(round(b / 16_000, 1), round(e / 16_000, 1)) for b, e in chunks] == [
        (0.8, 2.2),  # padded by 0.15 s on each side, on the 20 ms frame grid
        (2.8, 5.4),  # a 0.2 s gap does not end a chunk
    ]


def test_long_speech_is_cut_at_its_quietest_point() -> None:
    rng = np.random.default_rng(1)
    samples = np.concatenate([_tone(0.7) * rng.uniform(0.3, 1) for _ in range(60)])
    chunks = speech_chunks(samples, 16_000, max_seconds=10)
    assert all(0 < (end - begin) / 16_000 <= 10 for begin, end in chunks)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(samples)
    assert all(a[1] == b[0] for a, b in pairwise(chunks))  # contiguous: nothing dropped


def test_silence_has_no_speech() -> None:
    assert speech_chunks(np.zeros(160_000, np.float32), 16_000, 20) == []
    assert speech_chunks(_hush(5) * 0.01, 16_000, 20) == []
    assert speech_chunks(np.zeros(0, np.float32), 16_000, 20) == []
    assert speech_chunks(_tone(0.03), 16_000, 20) == [(0, 480)]  # too short to judge: kept
