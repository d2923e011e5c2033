"""The engine environment Qwen3-TTS, F5-TTS and Fish Speech share: ``torch-tts``.

Their pins agree (qwen-tts requires transformers 4.57.3, which F5-TTS and Fish Speech run
on too), so one environment serves all three: one install instead of three, and one
torch on disk instead of three. ``bragi backend install qwen3tts`` (or ``f5``, ``fish``, or
``torch-tts``) installs it.

The three engine packages go in without their declared dependencies (``no_deps``):
fish-speech 0.1.0 cannot install with them on Linux (it requires ``pyaudio``, which has
no wheel, and pins numpy, pydantic and datasets to old releases), descript-audiotools pins
``protobuf<3.20``, and qwen-tts and f5-tts pull gradio and bitsandbytes, which inference
never imports. What their inference code does import is listed in :data:`REQUIREMENTS`.
f5-tts's package imports its training stack (``wandb``, ``datasets``, ``accelerate``,
``ema_pytorch``) from ``f5_tts.model``, so those stay.
"""

from __future__ import annotations

from bragi.types import ModelKind

__all__ = ["ENVIRONMENT", "NO_DEPS", "REQUIREMENTS", "VERIFY_IMPORTS", "TorchTtsBackend"]

ENVIRONMENT = "torch-tts"

REQUIREMENTS: tuple[str, ...] = (
    "torch==2.13.0",
    "torchaudio==2.11.0",
    "transformers==4.57.3",  # qwen-tts's pin
    "accelerate==1.12.0",  # qwen-tts's pin
    # qwen-tts
    "librosa",
    "soundfile",
    "sox",
    "onnxruntime",
    "einops",
    # f5-tts
    "vocos==0.1.0",
    "x-transformers>=2.0,<3",
    "torchdiffeq",
    "ema-pytorch>=0.5.2",
    "wandb",
    "datasets",
    "matplotlib",
    "pydub",
    "pypinyin",
    "rjieba",
    "safetensors",
    "unidecode",
    "tomli",
    "click",
    "tqdm",
    # fish-speech, descript-audio-codec, descript-audiotools
    "hydra-core>=1.3",
    "omegaconf",
    "loguru",
    "tiktoken>=0.8",
    "loralib",
    "argbind>=0.3.7",
    "julius",
    "pyloudnorm",
    "ffmpy",
    "rich",
    "scipy",
    "flatten-dict",
    "markdown2",
    "randomname",
    "importlib-resources",
    "tensorboard",
)

NO_DEPS: tuple[str, ...] = (
    "qwen-tts==0.1.1",
    "f5-tts==1.1.22",
    "fish-speech==0.1.0",
    "descript-audio-codec==1.0.0",
    "descript-audiotools==0.7.2",
)

#: What the three engines import, checked once the environment is installed.
VERIFY_IMPORTS: tuple[str, ...] = (
    "torch",
    "qwen_tts",
    "f5_tts.infer.utils_infer",
    "fish_speech.models.text2semantic.inference",
    "fish_speech.models.dac.modded_dac",
)


class TorchTtsBackend:
    """What the backends of the ``torch-tts`` environment share: their kind, the
    environment their engines run in and its requirements. Whether it is installed is
    checked when a model loads, so the backend itself is always available."""

    kind: ModelKind = ModelKind.TTS
    environment: str = ENVIRONMENT
    requirements: tuple[str, ...] = REQUIREMENTS
    no_deps: tuple[str, ...] = NO_DEPS
    verify_imports: tuple[str, ...] = VERIFY_IMPORTS

    def is_available(self) -> bool:
        return True
