"""A catalog model that needs files from two hub repos (F5-TTS and its Vocos vocoder) is
pulled, verified, listed, configured and removed as one, through the stand-in hub.

The repos hold stand-in bytes under the real names and paths (the backend recognises an
F5-TTS checkpoint by its files' names); ``tests/torchengines`` serves the real thing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bragi.backends.registry import BackendRegistry
from bragi.cli.main import main
from bragi.config import ModelConfig, Settings
from bragi.models.catalog import Catalog
from bragi.models.configure import build_manager
from bragi.models.resolve import local_copy, plan_source
from bragi.models.served import ModelState
from bragi.models.store import ModelStore
from hubstub import HubStub

F5_REPO = "SWivid/F5-TTS"
VOCOS_REPO = "charactr/vocos-mel-24khz"


def _repo(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


@pytest.fixture
def f5_hub(hub_stub: HubStub, tmp_path: Path) -> HubStub:
    f5 = {
        "F5TTS_v1_Base/model_1250000.safetensors": b"\x01" * 4096,
        "F5TTS_v1_Base/vocab.txt": b" \na\nb\n",
        "F5TTS_Base/model_1200000.safetensors": b"\x02" * 8192,  # another model: not pulled
        "F5TTS_Base/vocab.txt": b" \na\n",
        "README.md": b"# F5-TTS\n",
    }
    vocos = {"config.yaml": b"feature_extractor: {}\n", "pytorch_model.bin": b"\x03" * 2048}
    hub_stub.add_repo(F5_REPO, _repo(tmp_path / "f5-repo", f5))
    hub_stub.add_repo(VOCOS_REPO, _repo(tmp_path / "vocos-repo", vocos))
    return hub_stub


def test_pull_list_show_and_remove_a_model_with_a_companion_repo(
    f5_hub: HubStub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    common = ["--data-dir", str(data)]
    assert main(["pull", "f5-tts", *common]) == 0
    out, err = capsys.readouterr()
    assert f"from hub repo {F5_REPO} and {VOCOS_REPO}" in err
    assert "CC-BY-NC-4.0 (non-commercial): not for commercial use" in err  # said first
    model_dir = Path(out.strip())
    assert model_dir.name == "F5TTS_v1_Base"  # the folder of the entry's files (as Piper's)
    assert sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*.*")) == [
        "model_1250000.safetensors",
        "vocab.txt",
    ]
    assert not f5_hub.content_gets("F5TTS_Base/model_1200000.safetensors")
    store = ModelStore(data / "models")
    assert {m.repo_id for m in store.list()} == {F5_REPO, VOCOS_REPO}  # both verified

    assert main(["list", *common]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()[1:] if line.strip()]
    assert len(rows) == 1, rows  # one model, not two repos
    assert rows[0].startswith(f"{F5_REPO} + {VOCOS_REPO}") and " f5 " in rows[0]

    assert main(["show", "f5-tts", *common]) == 0
    out, err = capsys.readouterr()
    shown = json.loads(out)
    assert shown["downloaded"] == str(model_dir) and shown["non_commercial"] is True
    assert shown["companions"] == [
        {"repo": VOCOS_REPO, "files": ["config.yaml", "pytorch_model.bin"], "option": "vocoder"}
    ]
    assert "not for commercial use" in err

    assert main(["rm", "f5-tts", *common]) == 0
    out = capsys.readouterr().out
    assert out.startswith("deleted f5-tts: 4 files")  # its two and its vocoder's two
    assert f"delete {VOCOS_REPO}@" in out
    assert store.list() == []


def test_a_companion_another_downloaded_model_needs_stays(
    f5_hub: HubStub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--data-dir", str(tmp_path / "data")]
    assert main(["pull", "f5-tts", *common]) == 0
    assert main(["pull", "f5-tts-v0", *common]) == 0  # the same repo and vocoder
    capsys.readouterr()
    assert main(["rm", "f5-tts", *common]) == 0
    out = capsys.readouterr().out
    assert out.startswith("deleted f5-tts: 2 files")
    assert f"keep   {VOCOS_REPO}@" in out and "also part of f5-tts-v0" in out
    store = ModelStore(tmp_path / "data" / "models")
    v0 = plan_source("f5-tts-v0", None, Catalog.builtin())
    assert local_copy(v0, store) is not None  # v0 is still whole


def test_a_model_is_on_disk_only_with_its_companions_and_gets_their_directory(
    f5_hub: HubStub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["pull", "f5-tts", "--data-dir", str(data)]) == 0
    capsys.readouterr()
    store = ModelStore(data / "models")
    source = plan_source("f5-tts", None, Catalog.builtin())
    vocos = store.local_path(source.companions[0][1])
    assert vocos is not None and (vocos / "pytorch_model.bin").is_file()

    settings = Settings(data_dir=data, models={"f5": ModelConfig(model="f5-tts")})
    manager = build_manager(settings, BackendRegistry.from_entry_points())
    model = manager.get("f5")
    assert model.state is ModelState.AVAILABLE and model.backend_name == "f5"
    assert model.options is not None and model.options.vocoder == str(vocos)  # type: ignore[attr-defined]

    store.remove(VOCOS_REPO)  # the vocoder gone: the model is not complete
    assert local_copy(source, store) is None
    assert build_manager(settings, BackendRegistry.from_entry_points()).get("f5").state is (
        ModelState.DOWNLOADING
    )


def test_catalog_entries_say_when_weights_are_non_commercial() -> None:
    catalog = Catalog.builtin()
    for name in ("f5-tts", "f5-tts-v0", "xtts-v2", "openaudio-s1-mini"):
        entry = catalog.get(name)
        assert entry is not None and entry.non_commercial, name
    for name in ("qwen3-tts-0.6b-customvoice", "kokoro", "whisper-base"):
        entry = catalog.get(name)
        assert entry is not None and not entry.non_commercial, name
