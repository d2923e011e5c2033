"""The starter set: what ``bragi serve`` serves with no ``models:`` configured.

Every model here is assembled from PyPI packages (``bragi[starter-models]``), so a
fresh install works offline.
"""

from __future__ import annotations

from bragi.config import ModelConfig
from bragi.models.catalog import Catalog
from bragi.models.packaged import is_installed

__all__ = ["starter_models"]


def _offline_kokoro(catalog: Catalog) -> bool:
    entry = catalog.get("kokoro-int8-ja")
    return entry is not None and entry.packaged is not None and is_installed(entry.packaged)


def starter_models(
    catalog: Catalog | None = None, *, preload: bool = True
) -> dict[str, ModelConfig]:
    """The starter set. Every entry but Kokoro has a hub fallback in the catalog; the
    offline Kokoro (Japanese voices only) gives way to the hub's full Kokoro when its
    PyPI packages are not installed.

    With ``preload``, the two models OpenAI clients name by default, ``whisper-1`` and
    ``tts-1``, load at start-up and stay loaded (keep-alive -1), so no request waits for
    them (about 180 and 120 MB of memory, 1-2 s of loading each on 2 cores); the others
    load on first use and follow the server's keep-alive (docs/benchmarks.md, P12)."""
    catalog = catalog or Catalog.builtin()
    kokoro = "kokoro-int8-ja" if _offline_kokoro(catalog) else "kokoro"
    kept = -1.0 if preload else None
    return {
        "whisper-1": ModelConfig(model="whisper-base", preload=preload, keep_alive=kept),
        "whisper-tiny.en": ModelConfig(model="whisper-tiny.en"),
        "tts-1": ModelConfig(model="piper:en_US-joe-medium", preload=preload, keep_alive=kept),
        "kokoro": ModelConfig(model=kokoro),
    }
