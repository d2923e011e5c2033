"""Qwen3-TTS text to speech (``qwen-tts``): built-in speakers, cloning, and voices described
in words, told apart by the model's ``config.json``.

Qwen3-TTS needs torch, so it runs in a worker from the shared ``torch-tts`` environment
(:mod:`bragi.backends.torch_tts`); this module is imported by the server and only reads
``config.json``. The engine is in :mod:`bragi.backends.qwen3tts_engine`.

A model directory is a hub repo such as ``Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice``:
``config.json`` (``"model_type": "qwen3_tts"``), the talker's weights and text tokenizer,
and the 12 Hz speech tokenizer under ``speech_tokenizer/``. ``tts_model_type`` says which
of three models it is:

- ``custom_voice``: built-in speakers (``talker_config.spk_id``); the 1.7B one follows
  ``instructions`` as a speaking style, the 0.6B one ignores them (qwen-tts drops them);
- ``base``: clones a voice from a reference recording, with its transcript when there
  is one (in-context), else from the speaker embedding alone;
- ``voice_design``: the voice is described in words: ``instructions`` is the voice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

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

__all__ = [
    "BACKEND",
    "DESIGNED_VOICE",
    "Qwen3TtsBackend",
    "Qwen3TtsOptions",
    "instructions_of",
    "languages_of",
    "read_config",
    "speakers_of",
]

#: The one voice a VoiceDesign model lists: the one its ``instructions`` describe.
DESIGNED_VOICE = "designed"
#: qwen-tts's names for languages (``codec_language_id`` keys), by ISO 639-1 code.
LANGUAGE_CODES: dict[str, str] = {
    "chinese": "zh",
    "english": "en",
    "japanese": "ja",
    "korean": "ko",
    "german": "de",
    "french": "fr",
    "russian": "ru",
    "portuguese": "pt",
    "spanish": "es",
    "italian": "it",
}
#: The released CustomVoice speakers (model card): language and gender.
KNOWN_SPEAKERS: dict[str, tuple[str, Literal["female", "male"]]] = {
    "vivian": ("zh", "female"),
    "serena": ("zh", "female"),
    "uncle_fu": ("zh", "male"),
    "dylan": ("zh", "male"),
    "eric": ("zh", "male"),
    "ryan": ("en", "male"),
    "aiden": ("en", "male"),
    "ono_anna": ("ja", "female"),
    "sohee": ("ko", "female"),
}
_VARIANTS = ("base", "custom_voice", "voice_design")
_TOKENIZER_12HZ = "qwen3_tts_tokenizer_12hz"


class Qwen3TtsOptions(BackendOptions):
    """``options:`` of a Qwen3-TTS model."""

    #: Language spoken when a request names none (an ISO 639-1 code the model knows);
    #: None: the model detects it from the text ("Auto").
    language: str | None = None
    #: Used when a request has no ``instructions`` (a VoiceDesign model's default voice).
    default_instructions: str | None = Field(default=None, min_length=1, max_length=4096)
    #: The cap on codec frames (12.5 a second) per sentence: ``max_frames_base`` plus
    #: ``max_frames_per_char`` per character. A sentence that reaches it without ending
    #: is an error (a runaway: the model missed its stop token), not minutes of noise.
    max_frames_base: int = Field(default=40, ge=1)
    max_frames_per_char: float = Field(default=2.0, ge=0.0)
    #: Sampling; None: the model's ``generation_config.json``.
    temperature: float | None = Field(default=None, gt=0.0, le=2.0)
    top_k: int | None = Field(default=None, ge=1)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, ge=1.0)
    #: Seed the sampler before each sentence: the same request then gives the same audio.
    seed: int | None = None
    #: Seconds of a cloned voice's reference used (the model works best with 3-15 s).
    max_reference_seconds: float = Field(default=15.0, gt=0.0, le=60.0)
    #: Cloned voices whose prompts (codes and speaker embedding) are kept in memory.
    cached_voices: int = Field(default=32, ge=0)
    #: Weights in bfloat16 on a GPU (float32 on the CPU always).
    bfloat16: bool = True
    #: torch CPU threads; None: the cores this process may use.
    threads: int | None = Field(default=None, ge=1)


def read_config(model_dir: Path) -> dict[str, Any] | None:
    """The model's ``config.json`` when it is a Qwen3-TTS model (or its bare speech
    tokenizer), else None."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    if config.get("model_type") in ("qwen3_tts", _TOKENIZER_12HZ) or str(
        config.get("model_type", "")
    ).startswith("qwen3_tts_tokenizer"):
        return config
    return None


def check_config(model_dir: Path, config: dict[str, Any]) -> str:
    """The model's variant (``base``, ``custom_voice``, ``voice_design``); ConfigError
    saying why for a Qwen3-TTS directory Bragi cannot serve."""
    model_type = str(config.get("model_type"))
    if model_type != "qwen3_tts":
        raise ConfigError(
            f"{model_dir} is Qwen3-TTS's speech tokenizer ({model_type}) on its own, not a "
            "text-to-speech model; use a model repo such as "
            "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice (each includes the tokenizer)"
        )
    tokenizer = str(config.get("tokenizer_type", ""))
    if tokenizer != _TOKENIZER_12HZ:
        raise ConfigError(
            f"{model_dir} is a Qwen3-TTS model with the {tokenizer or 'unknown'} speech "
            f"tokenizer; Bragi runs the 12 Hz models ({_TOKENIZER_12HZ}), the only ones "
            "released"
        )
    variant = str(config.get("tts_model_type", ""))
    if variant not in _VARIANTS:
        raise ConfigError(
            f"{model_dir}: unknown Qwen3-TTS model type {variant!r} (known: {', '.join(_VARIANTS)})"
        )
    if not (model_dir / "speech_tokenizer" / "config.json").is_file():
        raise ConfigError(f"{model_dir} has no speech_tokenizer/config.json")
    return variant


def instructions_of(config: dict[str, Any]) -> Instructions:
    """What the model does with ``instructions``, from its ``config.json``."""
    variant = config.get("tts_model_type")
    if variant == "voice_design":
        return "voice"
    # qwen-tts drops the instruction of the 0.6B CustomVoice model.
    if variant == "custom_voice" and config.get("tts_model_size") != "0b6":
        return "style"
    return "none"


def speakers_of(config: dict[str, Any]) -> list[Voice]:
    """A CustomVoice model's built-in speakers; a VoiceDesign model's one designed voice."""
    variant = config.get("tts_model_type")
    if variant == "voice_design":
        return [Voice(DESIGNED_VOICE)]
    if variant != "custom_voice":
        return []
    speakers = (config.get("talker_config") or {}).get("spk_id") or {}
    voices = []
    for name in speakers:
        language, gender = KNOWN_SPEAKERS.get(str(name).lower(), (None, None))
        voices.append(Voice(str(name), language=language, gender=gender))
    return voices


def languages_of(config: dict[str, Any]) -> dict[str, str]:
    """ISO 639-1 code ─▶ qwen-tts's language name, for the languages the model speaks
    (its dialects are reached through the speakers that speak them)."""
    ids = (config.get("talker_config") or {}).get("codec_language_id") or {}
    return {LANGUAGE_CODES[name]: name for name in ids if name in LANGUAGE_CODES}


class Qwen3TtsBackend(torch_tts.TorchTtsBackend):
    """Recognises Qwen3-TTS models; the engine runs in the ``torch-tts`` environment."""

    name: str = "qwen3tts"
    extra: str = "qwen3tts"
    options_model: type[BackendOptions] = Qwen3TtsOptions

    def detect(self, model_dir: Path) -> bool:
        return read_config(model_dir) is not None

    def check(self, model_dir: Path) -> None:
        """Refuse, before any worker starts, what Bragi cannot serve (see check_config)."""
        config = read_config(model_dir)
        if config is None:
            raise ConfigError(f"{model_dir} has no Qwen3-TTS config.json")
        check_config(model_dir, config)

    def voices_in(self, model_dir: Path, options: BackendOptions | None) -> Sequence[Voice]:
        config = read_config(model_dir)
        return speakers_of(config) if config else []

    def instructions_in(self, model_dir: Path, options: BackendOptions | None) -> Instructions:
        config = read_config(model_dir)
        return instructions_of(config) if config else "none"

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> TextToSpeech:
        config = read_config(model_dir)
        if config is None:
            raise ConfigError(f"{model_dir} has no Qwen3-TTS config.json")
        check_config(model_dir, config)
        from bragi.backends.qwen3tts_engine import load_qwen3tts

        opts = options_as(Qwen3TtsOptions, options)
        return load_qwen3tts(model_dir, config, device, opts)


BACKEND = Qwen3TtsBackend()
