"""The catalog's own rules: where in its repo each entry's model directory is, and what a
model can do before it is downloaded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bragi.backends.registry import BackendRegistry
from bragi.config import ModelConfig
from bragi.errors import ConfigError
from bragi.models.capabilities import capabilities_of, models_that_can
from bragi.models.catalog import Catalog, common_folder
from bragi.models.resolve import plan_source
from bragi.models.served import ModelState, ServedModel


@pytest.mark.parametrize(
    ("patterns", "folder"),
    [
        (["config.json", "model.bin", "vocabulary.*"], None),
        (["en/en_US/joe/medium/a.onnx", "en/en_US/joe/medium/a.onnx.json"], "en/en_US/joe/medium"),
        (["onnx/model.onnx", "voices/*.bin", "config.json"], None),
        (["onnx/a.onnx", "onnx/b.onnx"], "onnx"),
        (["de/*/x.onnx", "de/*/x.onnx.json"], "de"),  # a glob ends the folder
        (["a/b/c.txt", "a/d/e.txt"], "a"),
    ],
)
def test_common_folder(patterns: list[str], folder: str | None) -> None:
    assert common_folder(patterns) == folder


def test_each_piper_voice_is_served_from_its_own_folder() -> None:
    catalog = Catalog.builtin()
    voices = [entry for entry in catalog.entries() if entry.backend == "piper" and entry.repo]
    assert len(voices) >= 4
    for entry in voices:
        assert entry.files is not None
        [onnx] = [f for f in entry.files if f.endswith(".onnx")]
        assert entry.subdir == onnx.rsplit("/", 1)[0]
        hub = plan_source(entry.name, None, catalog).hub
        assert hub is None or hub.subdir == entry.subdir  # None: from its PyPI package


def test_other_entries_are_the_repo_root() -> None:
    catalog = Catalog.builtin()
    for name in ("whisper-base", "kokoro", "moonshine-tiny", "parakeet-tdt-0.6b-v2", "xtts-v2"):
        entry = catalog.get(name)
        assert entry is not None and entry.subdir is None, name


def test_a_model_not_downloaded_yet_can_clone_by_its_catalog_entry() -> None:
    catalog, registry = Catalog.builtin(), BackendRegistry.from_entry_points()
    models = []
    for alias, name in (("xtts", "xtts-v2"), ("kokoro", "kokoro"), ("whisper", "whisper-tiny")):
        entry = catalog.get(name)
        assert entry is not None
        model = ServedModel(alias, ModelConfig(model=name), plan_source(name, None, catalog))
        model.kind = entry.kind  # as build_manager sets it, before anything is on disk
        assert model.state is ModelState.DOWNLOADING and model.model_dir is None
        models.append(model)
    assert [capabilities_of(m, registry) for m in models][2] is None  # speech to text
    assert models_that_can(models, "cloning", registry) == ["xtts"]
    with pytest.raises(ValueError, match="no capability named 'singing'"):
        models_that_can(models, "singing", registry)


def test_every_hub_entry_pins_a_commit_or_is_listed_as_unpinned() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "models.md").read_text()
    [names] = re.findall(r"^Unpinned \(following [^:]*:(.*?)\.$", docs, re.M | re.S)
    listed = set(re.findall(r"`([^`]+)`", names))
    unpinned = set()
    for entry in Catalog.builtin().entries():
        if entry.repo is None:
            continue
        if entry.revision is None:
            unpinned.add(entry.name)
        else:
            assert re.fullmatch(r"[0-9a-f]{40}", entry.revision), entry.name
    assert listed == unpinned


def test_a_home_of_a_user_that_does_not_exist_is_a_config_error() -> None:
    """Regression (found by the API fuzzing): ``DELETE /admin/models/~0`` was a 500,
    because ``Path("~0").expanduser()`` raises RuntimeError for an unknown user."""
    with pytest.raises(ConfigError, match="~0"):
        plan_source("~0", None, Catalog.builtin())
