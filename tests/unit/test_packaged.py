"""Models assembled from (or used in place from) PyPI packages, hash checked."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from bragi.errors import ModelFetchError
from bragi.models.catalog import Catalog, PackagedFiles
from bragi.models.packaged import assembled, is_installed, materialize, packaged_dir


@pytest.fixture
def fake_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    for package, files in {
        "partone": {"data/w.part1": b"hello "},
        "parttwo": {"data/w.part2": b"world", "data/sub/conf.txt": b"x=1"},
    }.items():
        (site / package).mkdir(parents=True)
        (site / package / "__init__.py").write_text("")
        for name, content in files.items():
            (site / package / name).parent.mkdir(parents=True, exist_ok=True)
            (site / package / name).write_bytes(content)
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in ("partone", "parttwo"):
        sys.modules.pop(name, None)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_parts_are_concatenated_checked_and_stamped(fake_packages: Path, tmp_path: Path) -> None:
    spec = PackagedFiles(
        files={
            "model.bin": ("partone/data/w.part1", "parttwo/data/w.part2"),
            "conf/settings.txt": ("parttwo/data/sub/conf.txt",),  # nested target
        },
        sha256={"model.bin": _sha(b"hello world"), "conf/settings.txt": _sha(b"x=1")},
    )
    root = tmp_path / "models"
    assert is_installed(spec)
    assert assembled("m", spec, root) is None
    target = materialize("m", spec, root)
    assert (target / "model.bin").read_bytes() == b"hello world"
    assert (target / "conf" / "settings.txt").read_bytes() == b"x=1"
    assert assembled("m", spec, root) == target
    (target / "model.bin").write_bytes(b"tampered!!!")  # changed since: rebuilt and rechecked
    assert assembled("m", spec, root) is None
    assert (materialize("m", spec, root) / "model.bin").read_bytes() == b"hello world"


def test_a_wrong_hash_leaves_nothing_behind(fake_packages: Path, tmp_path: Path) -> None:
    spec = PackagedFiles(
        files={"model.bin": ("partone/data/w.part1",)}, sha256={"model.bin": "0" * 64}
    )
    with pytest.raises(ModelFetchError, match="sha256"):
        materialize("bad", spec, tmp_path)
    assert not packaged_dir(tmp_path, "bad").exists()
    assert not [p for p in (tmp_path / "packaged").iterdir() if p.name.startswith(".")]


def test_missing_packages_name_the_install_command(tmp_path: Path) -> None:
    spec = PackagedFiles(files={"a": ("no_such_pkg_xyz/a",)}, sha256={})
    assert not is_installed(spec)
    with pytest.raises(ModelFetchError, match="pip install no-such-pkg-xyz"):
        materialize("gone", spec, tmp_path)


def test_a_package_folder_is_used_in_place(fake_packages: Path, tmp_path: Path) -> None:
    hashes = {"sub/conf.txt": _sha(b"x=1"), "w.part2": _sha(b"world")}
    spec = PackagedFiles(files={}, sha256=hashes, directory="parttwo/data")
    folder = materialize("inplace", spec, tmp_path)
    assert folder == fake_packages / "parttwo" / "data"  # not copied
    assert assembled("inplace", spec, tmp_path) == folder
    # Checked once: a later start only compares sizes and times. Same size, same time,
    # other bytes would fail a new hash check, so this shows none is made.
    conf = folder / "sub" / "conf.txt"
    times = conf.stat()
    conf.write_bytes(b"x=2")
    os.utime(conf, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert materialize("inplace", spec, tmp_path) == folder
    bad = PackagedFiles(files={}, sha256=hashes | {"w.part2": "1" * 64}, directory="parttwo/data")
    with pytest.raises(ModelFetchError, match="sha256"):
        materialize("inplace-bad", bad, tmp_path)
    # every file of the folder is checked: one the catalog does not list stops it too
    (folder / "planted.py").write_text("import os\n")
    with pytest.raises(ModelFetchError, match=r"planted\.py .* is not one of its files"):
        materialize("inplace-planted", spec, tmp_path)
    # nor does a file planted after the folder was checked slip past the saved check
    assert assembled("inplace", spec, tmp_path) is None


def test_catalog_starter_entries_point_at_installed_packages() -> None:
    catalog = Catalog.builtin()
    for name in ("whisper-base", "whisper-tiny.en", "piper:en_US-joe-medium", "kokoro-int8-ja"):
        entry = catalog.get(name)
        assert entry is not None and entry.packaged is not None
        assert is_installed(entry.packaged), name


def test_every_packaged_file_of_the_catalog_has_a_hash() -> None:
    for entry in Catalog.builtin().entries():
        if entry.packaged is not None and entry.packaged.directory is None:
            assert set(entry.packaged.sha256) == set(entry.packaged.files), entry.name
    with pytest.raises(ValueError, match="every packaged file needs its sha256"):
        Catalog.from_yaml(
            "x:\n  kind: stt\n  backend: vosk\n  packaged:\n"
            "    files: {a: [p/a], b: [p/b]}\n    sha256: {a: '00'}\n"
        )
