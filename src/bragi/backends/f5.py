"""F5-TTS text to speech (``f5-tts``): voice cloning by flow matching, from a reference
recording and its transcript.

F5-TTS needs torch, so it runs in a worker from the shared ``torch-tts`` environment
(:mod:`bragi.backends.torch_tts`); this module is imported by the server and only looks at
file names. The engine is in :mod:`bragi.backends.f5_engine`.

A model is a checkpoint ``model_<step>.safetensors`` (or ``.pt``) with its ``vocab.txt``
beside it, in the model directory or one folder down, as the hub's ``SWivid/F5-TTS`` keeps
each model in a folder (``F5TTS_v1_Base/``) and fine-tunes often nest one (AllTalk #673).
Its vocoder, Vocos, is another hub repo (``charactr/vocos-mel-24khz``): the catalog pulls it
with the model and passes its directory as the ``vocoder`` option; otherwise a ``vocos/``
folder beside the checkpoint (AllTalk's layout) is used. The architecture is read from the
checkpoint's tensors; v1 and v0 (the same shapes) are told apart by the folder name
(``F5TTS_v1_*``), the step (1 250 000 is v1, 1 200 000 v0) or the ``version`` option.

F5-TTS's base weights are CC-BY-NC-4.0: not for commercial use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from bragi.backends import torch_tts
from bragi.backends.protocol import (
    BackendOptions,
    Device,
    Instructions,
    TextToSpeech,
    Voice,
)
from bragi.backends.support import options_as
from bragi.errors import ConfigError

__all__ = ["BACKEND", "F5Backend", "F5Options", "find_checkpoints", "vocoder_dir"]

_CHECKPOINT = re.compile(r"^model_(\d+)\.(safetensors|pt)$")
_VOCOS_FILES = ("config.yaml", "pytorch_model.bin")


class F5Options(BackendOptions):
    """``options:`` of an F5-TTS model."""

    #: The checkpoint, relative to the model directory (a folder such as
    #: ``F5TTS_v1_Base``, or the file); None: the only one there is.
    checkpoint: str | None = None
    #: ``v1`` or ``v0`` (the same shapes, different text handling); None: from the folder
    #: name or the training step, else v1.
    version: Literal["v1", "v0"] | None = None
    #: Directory with Vocos's ``config.yaml`` and ``pytorch_model.bin`` (the catalog sets it
    #: to its companion repo); None: ``vocos/`` beside the checkpoint or in the model dir.
    vocoder: str | None = None
    #: ISO 639-1 codes the checkpoint speaks (the base models: English and Chinese).
    languages: tuple[str, ...] = ("en", "zh")
    #: Flow-matching steps per sentence: fewer is faster and rougher (upstream: 32).
    nfe_step: int = Field(default=32, ge=1, le=128)
    cfg_strength: float = Field(default=2.0, ge=0.0, le=10.0)
    sway_sampling_coef: float = Field(default=-1.0, ge=-1.0, le=1.0)
    #: Seed the sampler before each sentence: the same request then gives the same audio.
    seed: int | None = None
    #: Seconds of a cloned voice's reference used: F5's context holds the reference and
    #: the speech together (trained on ~30 s), so upstream keeps at most 12 s.
    max_reference_seconds: float = Field(default=12.0, gt=0.0, le=25.0)
    #: Cloned voices whose prepared references are kept in memory.
    cached_voices: int = Field(default=32, ge=0)
    #: torch CPU threads; None: the cores this process may use.
    threads: int | None = Field(default=None, ge=1)


def find_checkpoints(model_dir: Path) -> list[Path]:
    """Every ``model_<step>.safetensors|pt`` with a ``vocab.txt`` beside it, in
    ``model_dir`` and the folders directly under it."""
    found: list[Path] = []
    if not model_dir.is_dir():
        return found
    folders = [model_dir, *sorted(p for p in model_dir.iterdir() if p.is_dir())]
    for folder in folders:
        if not (folder / "vocab.txt").is_file():
            continue
        found.extend(sorted(p for p in folder.iterdir() if _CHECKPOINT.match(p.name)))
    return found


def _refusal(checkpoint: Path) -> str | None:
    """Why Bragi cannot run ``checkpoint``, or None."""
    where = f"{checkpoint.parent.name}/{checkpoint.name}".lower()
    if "bigvgan" in where:
        return (
            "it needs the BigVGAN vocoder, which the f5-tts package on PyPI cannot load (it "
            "is a git submodule upstream); use F5TTS_v1_Base, which uses Vocos"
        )
    if "e2tts" in where:
        return "it is an E2 TTS model (UNetT backbone); Bragi runs F5-TTS (DiT) checkpoints"
    return None


def choose_checkpoint(model_dir: Path, wanted: str | None) -> Path:
    """The checkpoint to load; ConfigError saying why when there is none to choose."""
    found = find_checkpoints(model_dir)
    if wanted is not None:
        target = (model_dir / wanted).resolve()
        matches = [p for p in found if p.resolve() == target or p.parent.resolve() == target]
        if len(matches) != 1:
            listed = ", ".join(str(p.relative_to(model_dir)) for p in found) or "none"
            raise ConfigError(
                f"option checkpoint {wanted!r} names no single F5-TTS checkpoint in "
                f"{model_dir} (checkpoints: {listed})"
            )
        return matches[0]
    usable = [p for p in found if _refusal(p) is None]
    if not found:
        raise ConfigError(f"{model_dir} has no F5-TTS checkpoint (model_<step>.safetensors)")
    if not usable:
        raise ConfigError(f"{found[0]} cannot be served: {_refusal(found[0])}")
    if len(usable) > 1:
        listed = ", ".join(str(p.parent.relative_to(model_dir) / p.name) for p in usable)
        raise ConfigError(
            f"{model_dir} holds several F5-TTS checkpoints ({listed}); choose one with the "
            "checkpoint option"
        )
    return usable[0]


def vocoder_dir(model_dir: Path, checkpoint: Path, option: str | None) -> Path:
    """Where Vocos is; ConfigError saying how to get it when it is nowhere."""
    beside = [checkpoint.parent / "vocos", model_dir / "vocos"]
    candidates = [Path(option).expanduser()] if option else beside
    for candidate in candidates:
        if all((candidate / name).is_file() for name in _VOCOS_FILES):
            return candidate
    raise ConfigError(
        f"F5-TTS needs the Vocos vocoder ({' and '.join(_VOCOS_FILES)}) in "
        f"{' or '.join(str(c) for c in candidates)}: use the catalog model f5-tts, which "
        "pulls charactr/vocos-mel-24khz with it, or set the vocoder option to a directory "
        "holding it"
    )


def version_of(checkpoint: Path, option: str | None) -> str:
    """``v1`` or ``v0``: the option, else the folder's name, else the training step."""
    if option is not None:
        return option
    folder = checkpoint.parent.name.lower()
    if "v1" in folder.split("_"):
        return "v1"
    if folder.startswith("f5tts_"):
        return "v0"
    match = _CHECKPOINT.match(checkpoint.name)
    return "v0" if match and match.group(1) == "1200000" else "v1"


class F5Backend(torch_tts.TorchTtsBackend):
    """Recognises F5-TTS checkpoints; the engine runs in the ``torch-tts`` environment."""

    name: str = "f5"
    extra: str = "f5"
    options_model: type[BackendOptions] = F5Options

    def detect(self, model_dir: Path) -> bool:
        return bool(find_checkpoints(model_dir))

    def check(self, model_dir: Path) -> None:
        """Refuse a directory whose checkpoints are all ones Bragi cannot run."""
        found = find_checkpoints(model_dir)
        if found and all(_refusal(p) for p in found):
            raise ConfigError(f"{found[0]} cannot be served: {_refusal(found[0])}")

    def voices_in(self, model_dir: Path, options: BackendOptions | None) -> Sequence[Voice]:
        return []  # F5-TTS has no built-in voices: it speaks in cloned ones

    def instructions_in(self, model_dir: Path, options: BackendOptions | None) -> Instructions:
        return "none"  # F5-TTS has no instruction input

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> TextToSpeech:
        opts = options_as(F5Options, options)
        checkpoint = choose_checkpoint(model_dir, opts.checkpoint)
        vocoder = vocoder_dir(model_dir, checkpoint, opts.vocoder)
        version = version_of(checkpoint, opts.version)
        from bragi.backends.f5_engine import load_f5

        return load_f5(checkpoint, vocoder, version, device, opts)


BACKEND = F5Backend()
