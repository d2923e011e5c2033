"""The diarizer's two ONNX models, found and checked before any library loads them:
sherpa-onnx ends the whole process when a metadata key it reads is missing, so a missing or
bad key must be a clear ModelUnavailableError instead. Tiny models in the real formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from bragi.backends.protocol import BackendOptions
from bragi.diarization.backend import BACKEND, DiarizationOptions
from bragi.diarization.onnx_models import (
    EMBEDDING_KEYS,
    SEGMENTATION_KEYS,
    find_embedding,
    find_segmentation,
)
from bragi.errors import ConfigError, ModelUnavailableError
from bragi.runners.placement import RunnerConfig, create_engine
from tinymodels.diarization import WINDOW, write_embedding, write_segmentation


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    write_segmentation(tmp_path)
    write_embedding(tmp_path)
    return tmp_path


def test_both_models_are_found_with_their_metadata(model_dir: Path) -> None:
    segmentation = find_segmentation(model_dir)
    assert segmentation.path.name == "model.onnx"
    assert (segmentation.window_size, segmentation.num_speakers) == (WINDOW, 3)
    assert segmentation.window_seconds == pytest.approx(2.0)
    embedding = find_embedding(model_dir)
    assert (embedding.path.name, embedding.dim, embedding.framework) == (
        "embedding.onnx",
        16,
        "3d-speaker",
    )
    assert BACKEND.detect(model_dir)


@pytest.mark.parametrize("key", SEGMENTATION_KEYS)
def test_a_missing_segmentation_key_is_named(tmp_path: Path, key: str) -> None:
    write_segmentation(tmp_path, metadata={key: None})
    write_embedding(tmp_path)
    with pytest.raises(ModelUnavailableError, match=f"model.onnx: metadata '{key}' is missing"):
        BACKEND.load(tmp_path, "cpu", DiarizationOptions(threads=1))


@pytest.mark.parametrize("key", EMBEDDING_KEYS)
def test_a_missing_embedding_key_is_named_not_fatal(tmp_path: Path, key: str) -> None:
    write_segmentation(tmp_path)
    write_embedding(tmp_path, metadata={key: None})
    with pytest.raises(ModelUnavailableError, match=f"embedding.onnx: metadata '{key}' is missing"):
        BACKEND.load(tmp_path, "cpu", DiarizationOptions(threads=1))


@pytest.mark.parametrize(
    ("metadata", "complaint"),
    [
        ({"num_classes": "6"}, "num_classes 6 is not the powerset"),
        ({"window_size": "ten"}, "'window_size' is missing or not an integer"),
        ({"sample_rate": "0"}, "'sample_rate' must be positive"),
    ],
)
def test_bad_segmentation_values(tmp_path: Path, metadata: dict, complaint: str) -> None:
    write_segmentation(tmp_path, metadata=metadata)
    with pytest.raises(ModelUnavailableError, match=complaint):
        find_segmentation(tmp_path)


@pytest.mark.parametrize(
    ("metadata", "complaint"),
    [
        ({"framework": "nemo"}, "from 'nemo' are not supported"),
        ({"normalize_samples": "yes"}, "'normalize_samples' must be 0 or 1"),
        ({"output_dim": "-3"}, "'output_dim' must be positive"),
    ],
)
def test_bad_embedding_values(tmp_path: Path, metadata: dict, complaint: str) -> None:
    write_embedding(tmp_path, metadata=metadata)
    with pytest.raises(ModelUnavailableError, match=complaint):
        find_embedding(tmp_path)


def test_rates_must_agree(tmp_path: Path) -> None:
    write_segmentation(tmp_path)
    write_embedding(tmp_path, metadata={"sample_rate": "8000"})
    with pytest.raises(ModelUnavailableError, match="8000 Hz"):
        BACKEND.load(tmp_path, "cpu", DiarizationOptions(threads=1))


def test_the_embedding_option_names_a_file_or_directory_elsewhere(tmp_path: Path) -> None:
    write_segmentation(tmp_path / "segmentation")
    file = write_embedding(tmp_path / "voices", filename="voice.onnx")
    for embedding in (str(file), str(file.parent)):
        options = DiarizationOptions(embedding=embedding, threads=1)
        engine = BACKEND.load(tmp_path / "segmentation", "cpu", options)
        assert engine.capabilities.sample_rate == 16_000
        engine.close()
    with pytest.raises(ModelUnavailableError, match="no speaker-embedding model"):
        BACKEND.load(tmp_path / "segmentation", "cpu", DiarizationOptions(threads=1))


def test_an_onnx_file_that_is_not_a_model_is_passed_over(tmp_path: Path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    assert not BACKEND.detect(tmp_path)
    write_segmentation(tmp_path)
    assert BACKEND.detect(tmp_path)


def test_companion_is_the_embedding_option() -> None:
    assert BACKEND.companions(DiarizationOptions(embedding="campplus-en-voxceleb")) == {
        "embedding": "campplus-en-voxceleb"
    }
    assert BACKEND.companions(BackendOptions()) == {}


def test_a_diarizer_is_not_put_in_a_worker(model_dir: Path) -> None:
    config = RunnerConfig(runner="worker", label="diarizer")
    with pytest.raises(ConfigError, match="diarizer: a diarization model runs in the server"):
        create_engine(BACKEND, model_dir, "cpu", DiarizationOptions(threads=1), config)
    engine = create_engine(BACKEND, model_dir, "cpu", DiarizationOptions(threads=1))
    engine.close()
