"""The starter set: what ``bragi serve`` serves with no ``models:`` configured.

Every model here is assembled from PyPI packages (``bragi[starter-models]``), so a
fresh install works offline.
"""

from __future__ import annotations

from bragi.config import ModelConfig

__all__ = ["starter_models"]


def starter_models() -> dict[str, ModelConfig]:
    return {
        "whisper-1": ModelConfig(model="whisper-base"),
        "whisper-tiny.en": ModelConfig(model="whisper-tiny.en"),
        "tts-1": ModelConfig(model="piper:en_US-joe-medium"),
        "kokoro": ModelConfig(model="kokoro-int8-ja"),
    }
