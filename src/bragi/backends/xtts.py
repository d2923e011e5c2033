"""Coqui XTTS-v2 text to speech, from the maintained ``coqui-tts`` package.

XTTS needs torch, so it runs in a worker from its own environment
(``bragi backend install xtts``); this module is imported by the server and so only
recognises the model and declares options. The engine is in :mod:`bragi.backends.xtts_engine`,
imported by ``load()`` inside the worker.

A model directory is the hub repo ``coqui/XTTS-v2``: ``config.json`` (``"model": "xtts"``),
``model.pth``, ``vocab.json`` and, for the built-in speakers, ``speakers_xtts.pth``.
XTTS clones a voice from a few seconds of reference audio, so it declares ``cloning``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from bragi.backends.protocol import (
    BackendOptions,
    Device,
    ModelCapabilities,
    ModelKind,
    TextToSpeech,
)
from bragi.backends.support import options_as
from bragi.errors import EngineError

__all__ = ["BACKEND", "XttsBackend", "XttsOptions", "read_config"]


class XttsOptions(BackendOptions):
    """``options:`` of an XTTS model."""

    #: Language spoken when a request names none (an ISO 639-1 code the model knows).
    language: str = "en"
    #: GPT tokens per streamed chunk: smaller means earlier first audio, more overhead.
    stream_chunk_size: int = Field(default=20, ge=1, le=200)
    #: Sampling; None: the value in the model's config.json.
    temperature: float | None = Field(default=None, gt=0.0, le=2.0)
    top_k: int | None = Field(default=None, ge=1)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, ge=1.0)
    #: Seconds of a cloned voice's reference used for its speaker latents (XTTS: 30).
    max_reference_seconds: float = Field(default=30.0, gt=0.0, le=120.0)
    #: Cloned voices whose latents are kept in memory.
    cached_voices: int = Field(default=32, ge=0)
    #: torch CPU threads; None: the cores this process may use.
    threads: int | None = Field(default=None, ge=1)


def read_config(model_dir: Path) -> dict[str, Any] | None:
    """The model's ``config.json`` when it describes an XTTS model, else None."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or str(config.get("model", "")).lower() != "xtts":
        return None
    return config


class XttsBackend:
    """Recognises XTTS-v2 checkpoints; the engine runs in the ``xtts`` environment."""

    name: str = "xtts"
    kind: ModelKind = ModelKind.TTS
    extra: str = "xtts"
    options_model: type[BackendOptions] = XttsOptions
    #: Tested together. coqui-tts 0.28 imports ``six`` without declaring it, and refuses
    #: to import beside torch >= 2.9 without torchcodec (which XTTS itself never calls).
    requirements: tuple[str, ...] = (
        "torch==2.13.0",
        "torchaudio==2.11.0",
        "coqui-tts==0.28.0",
        "transformers==5.23.0",
        "torchcodec==0.17.0",
        "six==1.17.0",
    )
    verify_imports: tuple[str, ...] = ("torch", "TTS.tts.models.xtts")

    def is_available(self) -> bool:
        return True  # the environment is checked when a model loads

    def detect(self, model_dir: Path) -> bool:
        return read_config(model_dir) is not None and (model_dir / "model.pth").is_file()

    def capabilities_in(self, model_dir: Path, options: BackendOptions | None) -> ModelCapabilities:
        """Every XTTS-v2 checkpoint clones: known from the files, before the worker starts."""
        return ModelCapabilities(cloning=True)

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> TextToSpeech:
        config = read_config(model_dir)
        if config is None:
            raise EngineError(f"{model_dir} has no XTTS config.json")
        from bragi.backends.xtts_engine import load_xtts

        opts = options_as(XttsOptions, options)
        return load_xtts(model_dir, device, opts)


BACKEND = XttsBackend()
