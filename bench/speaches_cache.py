"""``python -m bench.speaches_cache DIR``: the bench's starter files as a Hugging Face cache
that speaches (an OpenAI-compatible peer, measured with ``--base-url``) loads offline.

speaches lists and loads models from the hub cache only, recognising them by their
model card (``library_name``, ``pipeline_tag``, tags) and by file names: Whisper as
``model.bin``, ``config.json``, ``tokenizer.json``, ``preprocessor_config.json``; Piper
as ``model.onnx`` and ``config.json``. This lays out the very files Bragi and the direct
side load (symbolic links into the bench's models dir) under ``DIR`` as the repos
``bragi-bench/faster-whisper-base`` and ``bragi-bench/piper-en_US-joe-medium``, with the
cards speaches looks for, and prints the environment to start speaches with.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bench.direct import materialize_starter

__all__ = ["PIPER_REPO", "WHISPER_REPO", "main", "write_cache"]

WHISPER_REPO = "bragi-bench/faster-whisper-base"
PIPER_REPO = "bragi-bench/piper-en_US-joe-medium"
_COMMIT = "0" * 40
#: Whisper base's feature extractor, as the hub's CTranslate2 conversions ship it
_PREPROCESSOR = {
    "chunk_length": 30,
    "feature_extractor_type": "WhisperFeatureExtractor",
    "feature_size": 80,
    "hop_length": 160,
    "n_fft": 400,
    "n_samples": 480000,
    "nb_max_frames": 3000,
    "padding_side": "right",
    "padding_value": 0.0,
    "processor_class": "WhisperProcessor",
    "return_attention_mask": False,
    "sampling_rate": 16000,
}


def _card(library: str, task: str, tags: list[str]) -> str:
    listed = "".join(f"- {tag}\n" for tag in tags)
    return (
        f"---\nlibrary_name: {library}\npipeline_tag: {task}\nlanguage:\n- en\ntags:\n{listed}---\n"
    )


def _repo(cache: Path, repo: str, files: dict[str, Path | str]) -> None:
    """One repo in the hub cache layout: refs/main and a snapshot of links and texts."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / _COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(_COMMIT)
    for name, content in files.items():
        target = snapshot / name
        target.unlink(missing_ok=True)
        if isinstance(content, Path):
            target.symlink_to(content.resolve())
        else:
            target.write_text(content)


def write_cache(cache: Path, models_dir: Path) -> None:
    dirs = materialize_starter(models_dir)
    whisper, piper = dirs["whisper"], dirs["piper"]
    _repo(
        cache,
        WHISPER_REPO,
        {
            "model.bin": whisper / "model.bin",
            "config.json": whisper / "config.json",
            "tokenizer.json": whisper / "tokenizer.json",
            "vocabulary.txt": whisper / "vocabulary.txt",
            "preprocessor_config.json": json.dumps(_PREPROCESSOR, indent=2),
            "README.md": _card("ctranslate2", "automatic-speech-recognition", ["audio"]),
        },
    )
    onnx = next(piper.glob("*.onnx"))
    _repo(
        cache,
        PIPER_REPO,
        {
            "model.onnx": onnx,
            "config.json": onnx.with_name(onnx.name + ".json"),
            "README.md": _card("onnx", "text-to-speech", ["speaches", "piper"]),
        },
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.speaches_cache", description=__doc__)
    parser.add_argument("cache", type=Path, help="the hub cache dir to write (HF_HUB_CACHE)")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "bragi-bench"
        / "models",
    )
    args = parser.parse_args()
    write_cache(args.cache, args.models_dir)
    print(f"HF_HUB_CACHE={args.cache} HF_HUB_OFFLINE=1")
    print(f"STT model: {WHISPER_REPO}; TTS model: {PIPER_REPO}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
