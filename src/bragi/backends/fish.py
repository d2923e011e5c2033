"""Fish Speech text to speech, OpenAudio S1-mini only (``fish-speech`` 0.1.0): voice cloning
from a reference recording and its transcript, 44.1 kHz.

Fish Speech needs torch, so it runs in a worker from the shared ``torch-tts`` environment
(:mod:`bragi.backends.torch_tts`, where fish-speech is installed without its declared
dependencies: they cannot install on Linux); this module is imported by the server and
only reads ``config.json`` and file names. The engine is in :mod:`bragi.backends.fish_engine`.

A model directory is the hub repo ``fishaudio/openaudio-s1-mini``: ``config.json``
(``"model_type": "dual_ar"``), ``model.pth``, ``tokenizer.tiktoken``, ``special_tokens.json``
and ``codec.pth`` (a modded DAC whose architecture is fish-speech's ``modded_dac_vq.yaml``,
or the ``codec_config`` option's). Refused, with the reason: Fish Audio S2
(``fish_qwen3_omni``) and Fish Speech 1.x (a ``firefly-gan-vq`` codec).

S1-mini has no built-in voice (without a reference every sentence gets a new random
timbre), so it speaks in cloned voices, or in the ``default_reference`` recording.
``instructions`` are S1's emotion markers, such as ``(sad)`` or ``(whispering)``, put
before each sentence. The S1-mini weights are CC-BY-NC-SA-4.0: not for commercial use.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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

__all__ = ["BACKEND", "DEFAULT_VOICE", "FishBackend", "FishOptions", "read_config"]

#: The voice a model with a ``default_reference`` lists.
DEFAULT_VOICE = "default"
_FILES = ("model.pth", "tokenizer.tiktoken", "codec.pth")


class FishOptions(BackendOptions):
    """``options:`` of a Fish Speech (OpenAudio S1-mini) model."""

    #: The codec's hydra config; None: ``codec.yaml`` in the model directory if there is
    #: one, else fish-speech's own ``modded_dac_vq.yaml`` (S1-mini's).
    codec_config: str | None = None
    #: A recording (any format FFmpeg reads) spoken in when a request names no cloned
    #: voice, listed as the voice ``default``; with its transcript.
    default_reference: str | None = None
    default_reference_text: str | None = Field(default=None, min_length=1)
    #: ISO 639-1 codes S1 speaks (it reads the language from the text).
    languages: tuple[str, ...] = ("en", "zh", "ja", "ko", "fr", "de", "ar", "es")
    temperature: float = Field(default=0.8, gt=0.0, lt=2.0)
    top_p: float = Field(default=0.8, gt=0.0, le=1.0)
    repetition_penalty: float = Field(default=1.1, gt=0.0, lt=2.0)
    #: The cap on codec frames (about 21.5 a second) per sentence: ``max_frames_base``
    #: plus ``max_frames_per_char`` per character. A sentence that reaches it without
    #: ending is an error (a runaway), not a minute of noise.
    max_frames_base: int = Field(default=64, ge=1)
    max_frames_per_char: float = Field(default=4.0, ge=0.0)
    #: Seed the sampler before each sentence: the same request then gives the same audio.
    seed: int | None = None
    #: Seconds of a cloned voice's reference used (S1 works best with 10-30 s).
    max_reference_seconds: float = Field(default=30.0, gt=0.0, le=60.0)
    #: Cloned voices whose codes are kept in memory.
    cached_voices: int = Field(default=32, ge=0)
    #: Weights in bfloat16 on a GPU (float32 on the CPU always).
    bfloat16: bool = True
    #: torch CPU threads; None: the cores this process may use.
    threads: int | None = Field(default=None, ge=1)


def read_config(model_dir: Path) -> dict[str, Any] | None:
    """``config.json`` when it is a Fish Speech model (S1, S2 or 1.x), else None."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    if config.get("model_type") == "fish_qwen3_omni":
        return config
    if config.get("model_type") == "dual_ar" and (model_dir / "tokenizer.tiktoken").is_file():
        return config
    return None


def check_files(model_dir: Path, config: dict[str, Any]) -> None:
    """ConfigError saying why, for a Fish Speech model Bragi does not run."""
    if config.get("model_type") == "fish_qwen3_omni":
        raise ConfigError(
            f"{model_dir} is Fish Audio S2, which Bragi does not run: it needs fish-speech "
            "2.x (not on PyPI), about 24 GB of GPU memory, and its weights are under the Fish "
            "Audio Research License; Bragi runs OpenAudio S1-mini (fishaudio/openaudio-s1-mini)"
        )
    if any(model_dir.glob("firefly-gan-vq*.pth")):
        raise ConfigError(
            f"{model_dir} is Fish Speech 1.x (a firefly-gan-vq codec), the generation before "
            "OpenAudio S1, which fish-speech 0.1.0 cannot run; use "
            "fishaudio/openaudio-s1-mini"
        )
    missing = [name for name in _FILES if not (model_dir / name).is_file()]
    if missing:
        raise ConfigError(f"{model_dir} is missing {', '.join(missing)} (OpenAudio S1-mini)")


def codec_config_path(model_dir: Path, option: str | None) -> Path | None:
    """The codec's hydra config; None: fish-speech's own (resolved in the worker)."""
    if option is not None:
        path = Path(option).expanduser()
        path = path if path.is_absolute() else model_dir / path
        if not path.is_file():
            raise ConfigError(f"option codec_config: {path} does not exist")
        return path
    beside = model_dir / "codec.yaml"
    return beside if beside.is_file() else None


class FishBackend(torch_tts.TorchTtsBackend):
    """Recognises OpenAudio S1-mini; the engine runs in the ``torch-tts`` environment."""

    name: str = "fish"
    extra: str = "fish"
    options_model: type[BackendOptions] = FishOptions

    def detect(self, model_dir: Path) -> bool:
        return read_config(model_dir) is not None

    def check(self, model_dir: Path) -> None:
        config = read_config(model_dir)
        if config is None:
            raise ConfigError(f"{model_dir} has no Fish Speech config.json")
        check_files(model_dir, config)

    def voices_in(self, model_dir: Path, options: BackendOptions | None) -> Sequence[Voice]:
        default = options is not None and getattr(options, "default_reference", None)
        return [Voice(DEFAULT_VOICE)] if default else []

    def instructions_in(self, model_dir: Path, options: BackendOptions | None) -> Instructions:
        return "style"  # emotion markers such as (sad)

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> TextToSpeech:
        self.check(model_dir)
        opts = options_as(FishOptions, options)
        codec_config = codec_config_path(model_dir, opts.codec_config)
        # fish-speech draws a progress bar per sentence; tqdm reads this as it is imported.
        os.environ.setdefault("TQDM_DISABLE", "1")
        from bragi.backends.fish_engine import load_fish

        return load_fish(model_dir, codec_config, device, opts)


#: An instruction S1 follows: one or more emotion or tone markers, e.g. "(sad) (whispering)".
MARKERS = re.compile(r"^\s*(\([A-Za-z][A-Za-z -]{0,30}\)\s*)+$")

BACKEND = FishBackend()
