"""A torch engine runs code that comes with its model: one is never chosen for a hub repo
outside the catalog because of what its files look like, only when the config names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bragi.backends.registry import BackendRegistry
from bragi.config import ModelConfig
from bragi.errors import ConfigError
from bragi.models.catalog import Catalog
from bragi.models.prepare import choose_backend
from bragi.models.resolve import plan_source
from fakes import FakeSttBackend, make_model_dir


class PickleLoadingBackend(FakeSttBackend):
    """A torch engine, as far as Bragi can tell: it declares an environment of its own."""

    name = "fake-torch"
    requirements = ("torch==2.13.0",)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    return make_model_dir(tmp_path, "fake-torch")


@pytest.fixture
def registry() -> BackendRegistry:
    return BackendRegistry([PickleLoadingBackend(), FakeSttBackend()])


def test_a_hub_repo_that_looks_like_a_torch_model_is_not_loaded_by_its_looks(
    files: Path, registry: BackendRegistry
) -> None:
    config = ModelConfig(model="stranger/model")
    source = plan_source("stranger/model", None, Catalog.builtin())
    with pytest.raises(ConfigError) as refused:
        choose_backend("asr", config, source, registry, files)
    assert refused.value.message == (
        "model 'asr' (stranger/model): its files are a fake-torch model, and fake-torch runs "
        "code that comes with the model; Bragi loads such a model from a hub repo outside its "
        "catalog only when told to: if you trust stranger/model, set `backend: fake-torch` "
        "for it (models.asr.backend)"
    )
    told = ModelConfig(model="stranger/model", backend="fake-torch")
    assert choose_backend("asr", told, source, registry, files).name == "fake-torch"


def test_a_local_directory_or_an_engine_in_the_server_is_detected_as_before(
    files: Path, registry: BackendRegistry, tmp_path: Path
) -> None:
    local = plan_source(str(files), None, Catalog.builtin())
    found = choose_backend("asr", ModelConfig(model=str(files)), local, registry, files)
    assert found is not None and found.name == "fake-torch"  # the user's own files
    onnx = make_model_dir(tmp_path / "other", "fake-stt")
    hub = plan_source("someone/onnx-model", None, Catalog.builtin())
    found = choose_backend("asr", ModelConfig(model="someone/onnx-model"), hub, registry, onnx)
    assert found is not None and found.name == "fake-stt"
