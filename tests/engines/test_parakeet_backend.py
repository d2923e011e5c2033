"""The Parakeet backend on tiny random models in onnx-asr's real hub layout, real speech.

No Parakeet weights are on PyPI, so the models come from ``tinymodels.parakeet``: the
files, names, dtypes and config of ``istupakov/parakeet-tdt-0.6b-v2-onnx`` with random
weights. Their text is noise; these tests check that onnx-asr's real loader and decoder
take them through Bragi's backend, and what comes out.
"""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from bragi.audio import Audio, decode_audio
from bragi.backends.faster_whisper import BACKEND as WHISPER
from bragi.backends.paraformer import BACKEND as PARAFORMER
from bragi.backends.parakeet import BACKEND, ParakeetEngine, ParakeetOptions
from bragi.backends.protocol import ModelKind, TranscribeOptions
from bragi.backends.registry import BackendRegistry
from bragi.errors import EngineError, ModelUnavailableError, UnsupportedCapabilityError
from speech import SpeechSample
from tinymodels import MULTILINGUAL, write_paraformer, write_parakeet
from tinymodels.checks import assert_well_formed

pytestmark = pytest.mark.slow

OPTIONS = ParakeetOptions(threads=2)
# fmt: off
V3_LANGUAGES = ("bg", "hr", "cs", "da", "nl", "en", "et", "fi", "fr", "de", "el", "hu", "it",
                "lv", "lt", "mt", "pl", "pt", "ro", "sk", "sl", "es", "sv", "ru", "uk")
# fmt: on


@pytest.fixture(scope="session")
def parakeet_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """TDT as v2 ships it (fp32, encoder weights in .onnx.data), int8 TDT, and RNN-T."""
    root = tmp_path_factory.mktemp("parakeet")
    return {
        "tdt": write_parakeet(root / "tdt"),
        "tdt-int8": write_parakeet(root / "tdt-int8", quantization="int8"),
        "rnnt": write_parakeet(root / "rnnt", model_type="nemo-conformer-rnnt"),
    }


@pytest.fixture(scope="module")
def engines(parakeet_dirs: dict[str, Path]) -> dict[str, ParakeetEngine]:
    return {name: BACKEND.load(path, "cpu", OPTIONS) for name, path in parakeet_dirs.items()}


@pytest.fixture(scope="module")
def clips(speech: dict[str, SpeechSample]) -> dict[str, Audio]:
    """The recordings decoded to 16 kHz mono by Bragi's own decoder, as the server does."""
    return {name: decode_audio(s.path.read_bytes(), 16_000) for name, s in speech.items()}


def test_backend_declares_itself() -> None:
    assert (BACKEND.name, BACKEND.kind, BACKEND.extra) == ("parakeet", ModelKind.STT, "parakeet")
    assert BACKEND.options_model is ParakeetOptions and BACKEND.is_available()


def test_detects_only_nemo_transducer_exports(
    parakeet_dirs: dict[str, Path], tmp_path: Path
) -> None:
    assert all(BACKEND.detect(path) for path in parakeet_dirs.values())
    whisper = shutil.copytree(parakeet_dirs["tdt"], tmp_path / "whisper")
    (whisper / "config.json").write_text(json.dumps({"model_type": "whisper-ort"}))
    broken = shutil.copytree(parakeet_dirs["tdt"], tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    half = shutil.copytree(parakeet_dirs["tdt"], tmp_path / "half")
    (half / "decoder_joint-model.onnx").unlink()
    no_vocab = shutil.copytree(parakeet_dirs["tdt"], tmp_path / "no-vocab")
    (no_vocab / "vocab.txt").unlink()
    paraformer = write_paraformer(tmp_path / "paraformer")
    for directory in (whisper, broken, half, no_vocab, paraformer, tmp_path / "none"):
        assert not BACKEND.detect(directory), directory.name


def test_the_registry_picks_parakeet_among_all_backends(parakeet_dirs: dict[str, Path]) -> None:
    registry = BackendRegistry([WHISPER, PARAFORMER, BACKEND])
    assert all(registry.detect(path) is BACKEND for path in parakeet_dirs.values())


def test_options_are_strict() -> None:
    with pytest.raises(ValidationError):
        ParakeetOptions.model_validate({"compute_type": "int8"})
    with pytest.raises(ValidationError):
        ParakeetOptions(max_chunk_seconds=0.5)
    assert ParakeetOptions(language="German").language == "de"
    with pytest.raises(ValidationError, match="not one of languages"):
        ParakeetOptions(languages=("en",), language="de")


@pytest.mark.parametrize("model", ["tdt", "tdt-int8", "rnnt"])
@pytest.mark.parametrize("name", ["beckett", "two_cities"])
def test_segments_and_words_have_real_times(
    engines: dict[str, ParakeetEngine],
    parakeet_dirs: dict[str, Path],
    clips: dict[str, Audio],
    model: str,
    name: str,
) -> None:
    audio = clips[name]
    assert engines[model].capabilities.word_timestamps
    assert BACKEND.word_timestamps_in(parakeet_dirs[model], "cpu", OPTIONS) is True  # unloaded
    segments, info = engines[model].transcribe(audio, TranscribeOptions(word_timestamps=True))
    assert inspect.isgenerator(segments)  # decoded piece by piece as it is read
    collected = list(segments)
    assert_well_formed(collected, info, audio.duration, words=True, max_chunk=20)
    assert info.language == "en"  # an ASCII vocabulary: English only, like v2
    for segment in collected:
        assert segment.text.startswith(" ") and segment.avg_logprob < 0  # real log-probs
        assert all(0 <= token < 12 for token in segment.tokens)


def test_long_speech_is_cut_at_pauses(
    parakeet_dirs: dict[str, Path], clips: dict[str, Audio]
) -> None:
    options = ParakeetOptions(threads=2, max_chunk_seconds=4)
    segments, info = BACKEND.load(parakeet_dirs["tdt"], "cpu", options).transcribe(
        clips["two_cities"], TranscribeOptions()
    )
    collected = list(segments)
    assert_well_formed(collected, info, info.duration, words=True, max_chunk=4)
    assert len(collected) >= 44.4 / 4


def test_silence_and_tiny_clips(engines: dict[str, ParakeetEngine]) -> None:
    silence, info = engines["tdt"].transcribe(
        Audio(np.zeros(32_000, np.float32), 16_000), TranscribeOptions()
    )
    assert list(silence) == [] and info.duration == 2.0
    click = np.zeros(800, np.float32)
    click[100:300] = 0.5  # 50 ms: shorter than the encoder's window, padded
    for segment in engines["tdt"].transcribe(Audio(click, 16_000), TranscribeOptions())[0]:
        assert 0 <= segment.start < segment.end <= 0.05


def test_requests_it_cannot_serve_fail_before_decoding(
    engines: dict[str, ParakeetEngine], clips: dict[str, Audio]
) -> None:
    engine, audio = engines["tdt"], clips["beckett"]
    with pytest.raises(UnsupportedCapabilityError, match="translate") as translate:
        engine.transcribe(audio, TranscribeOptions(task="translate"))
    with pytest.raises(UnsupportedCapabilityError, match=r"'de'.*supported: en") as german:
        engine.transcribe(audio, TranscribeOptions(language="de"))
    assert (translate.value.param, german.value.param) == ("model", "language")
    with pytest.raises(EngineError, match="16000 Hz"):
        engine.transcribe(Audio(audio.samples, 48_000), TranscribeOptions())


def test_a_multilingual_vocabulary_takes_its_languages_from_the_options(
    tmp_path: Path, clips: dict[str, Audio]
) -> None:
    directory = write_parakeet(tmp_path, vocab=MULTILINGUAL)
    open_engine = BACKEND.load(directory, "cpu", OPTIONS)
    assert open_engine.capabilities.languages is None  # the files do not say which
    silence = Audio(np.zeros(1600, np.float32), 16_000)
    assert open_engine.transcribe(silence, TranscribeOptions())[1].language == "unknown"
    # with speech, its text says (the tiny model's words are noise, but in some language)
    segments, info = open_engine.transcribe(clips["beckett"], TranscribeOptions())
    assert info.language != "unknown" and list(segments)
    v3 = BACKEND.load(directory, "cpu", ParakeetOptions(languages=V3_LANGUAGES, language="de"))
    assert v3.capabilities.languages == set(V3_LANGUAGES)
    assert v3.transcribe(silence, TranscribeOptions())[1].language == "de"
    assert v3.transcribe(silence, TranscribeOptions(language="fr"))[1].language == "fr"
    with pytest.raises(UnsupportedCapabilityError, match="'ja'"):
        v3.transcribe(silence, TranscribeOptions(language="ja"))


def test_unquantized_files_unless_told_otherwise(tmp_path: Path, clips: dict[str, Audio]) -> None:
    alone = write_parakeet(tmp_path / "alone", seed=1)
    both = write_parakeet(tmp_path / "both", seed=1)
    write_parakeet(both, quantization="int8", seed=2)

    def tokens(directory: Path, options: ParakeetOptions) -> list[int]:
        segments, _ = BACKEND.load(directory, "cpu", options).transcribe(
            clips["beckett"], TranscribeOptions()
        )
        return [token for segment in segments for token in segment.tokens]

    assert tokens(both, OPTIONS) == tokens(alone, OPTIONS)
    assert tokens(both, ParakeetOptions(quantization="int8")) != tokens(alone, OPTIONS)
    with pytest.raises(ModelUnavailableError, match=r"no fp16 .* only int8, unquantized"):
        BACKEND.load(both, "cpu", ParakeetOptions(quantization="fp16"))


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("garbage-encoder", "could not load"),
        ("no-weights", "could not load"),
        ("no-blank", "no <blk> token"),
        ("bad-vocab", "cannot read the Parakeet vocabulary"),
        ("ctc", "not a Parakeet TDT or RNN-T"),
        ("no-decoder", "no encoder-model/decoder_joint-model pair"),
    ],
)
def test_broken_models_fail_to_load_with_a_clear_error(
    tmp_path: Path, breakage: str, message: str
) -> None:
    directory = write_parakeet(tmp_path)
    if breakage == "garbage-encoder":
        (directory / "encoder-model.onnx").write_bytes(b"not a model")
    elif breakage == "no-weights":
        (directory / "encoder-model.onnx.data").unlink()
    elif breakage == "no-blank":
        (directory / "vocab.txt").write_text("<unk> 0\n▁a 1\n", encoding="utf-8")
    elif breakage == "bad-vocab":
        (directory / "vocab.txt").write_text("<blk>\n", encoding="utf-8")
    elif breakage == "ctc":
        (directory / "config.json").write_text(json.dumps({"model_type": "nemo-conformer-ctc"}))
    elif breakage == "no-decoder":
        (directory / "decoder_joint-model.onnx").unlink()
    with pytest.raises(ModelUnavailableError, match=message):
        BACKEND.load(directory, "cpu", OPTIONS)


def test_a_closed_engine_refuses_work(
    parakeet_dirs: dict[str, Path], clips: dict[str, Audio]
) -> None:
    engine = BACKEND.load(parakeet_dirs["tdt"], "cpu", OPTIONS)
    segments, _ = engine.transcribe(clips["beckett"], TranscribeOptions())
    engine.close()  # nothing was decoded yet: decoding is lazy
    with pytest.raises(EngineError, match="closed"):
        next(segments)
    with pytest.raises(EngineError, match="closed"):
        engine.transcribe(clips["beckett"], TranscribeOptions())


def test_importing_and_detecting_does_not_import_onnx_asr(parakeet_dirs: dict[str, Path]) -> None:
    tdt = parakeet_dirs["tdt"]
    code = (
        "import sys, pathlib\n"
        "from bragi.backends.parakeet import BACKEND\n"
        f"assert BACKEND.is_available() and BACKEND.detect(pathlib.Path({str(tdt)!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'onnx_asr', 'onnxruntime'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_chunks_decoded_in_batches_read_as_one_by_one(
    parakeet_dirs: dict[str, Path], clips: dict[str, Audio]
) -> None:
    """batch_size > 1 hands onnx-asr several chunks at once: the same segments, in order."""
    results = []
    for batch_size in (1, 4):
        options = ParakeetOptions(threads=2, max_chunk_seconds=4, batch_size=batch_size)
        engine = BACKEND.load(parakeet_dirs["tdt"], "cpu", options)
        segments, info = engine.transcribe(clips["two_cities"], TranscribeOptions())
        assert inspect.isgenerator(segments)
        results.append(list(segments))
        assert_well_formed(results[-1], info, info.duration, words=True, max_chunk=4)
    one_by_one, batched = results
    assert len(batched) == len(one_by_one) >= 44.4 / 4
    assert [(s.start, s.end) for s in batched] == [(s.start, s.end) for s in one_by_one]
    assert [s.text for s in batched] == [s.text for s in one_by_one]
