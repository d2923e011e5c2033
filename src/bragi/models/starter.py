"""The starter set: what ``bragi serve`` serves with no ``models:`` configured.

Every model here is assembled from PyPI packages (``bragi[starter-models]``), so a
fresh install works offline.
"""

from __future__ import annotations

from bragi.backends.protocol import ModelKind
from bragi.config import ModelAlias, ModelConfig
from bragi.models.catalog import Catalog
from bragi.models.packaged import is_installed
from bragi.models.resolve import local_copy, plan_source
from bragi.models.store import ModelStore

__all__ = ["DIARIZER", "default_aliases", "starter_models"]

#: The starter set's diarization model (hub only: no PyPI package carries its weights).
DIARIZER = "pyannote-segmentation-3.0"
#: OpenAI's current model names and the kind of model each stands for.
_OPENAI_NAMES: dict[str, tuple[ModelKind, bool]] = {
    "gpt-4o-transcribe": (ModelKind.STT, False),
    "gpt-4o-mini-transcribe": (ModelKind.STT, False),
    "gpt-transcribe": (ModelKind.STT, False),
    "gpt-4o-transcribe-diarize": (ModelKind.STT, True),
    "gpt-4o-mini-tts": (ModelKind.TTS, False),
    "tts-1-hd": (ModelKind.TTS, False),
}
_PREFERRED = {ModelKind.STT: "whisper-1", ModelKind.TTS: "tts-1"}


def _offline_kokoro(catalog: Catalog) -> bool:
    entry = catalog.get("kokoro-int8-ja")
    return entry is not None and entry.packaged is not None and is_installed(entry.packaged)


def _diarizer_pulled(catalog: Catalog, store: ModelStore | None) -> bool:
    """Whether the starter diarizer and its embedding model are on disk. It is never
    fetched by itself: the starter set must start clean on an offline machine, so a user
    who wants speakers pulls it once (``bragi pull pyannote-segmentation-3.0``)."""
    if store is None:
        return False
    entry = catalog.get(DIARIZER)
    if entry is None:
        return False
    source = plan_source(DIARIZER, None, catalog)
    embedding = str(entry.options.get("embedding", ""))
    embedding_source = plan_source(embedding, None, catalog) if embedding else None
    return local_copy(source, store) is not None and (
        embedding_source is None or local_copy(embedding_source, store) is not None
    )


def default_aliases(kinds: dict[str, ModelKind | None]) -> dict[str, ModelAlias]:
    """OpenAI's current names for the configured models (``kinds``: alias -> kind): each
    names ``whisper-1``/``tts-1`` when configured, else the first model of its kind."""
    aliases = {}
    for name, (kind, diarize) in _OPENAI_NAMES.items():
        if name in kinds:
            continue
        preferred = _PREFERRED[kind]
        target = preferred if kinds.get(preferred) in (kind, None) and preferred in kinds else None
        target = target or next((a for a, k in kinds.items() if k is kind), None)
        if target is not None:
            aliases[name] = ModelAlias(model=target, diarize=diarize)
    return aliases


def starter_models(
    catalog: Catalog | None = None, store: ModelStore | None = None, *, preload: bool = True
) -> dict[str, ModelConfig]:
    """The starter set. Every entry but Kokoro has a hub fallback in the catalog; the
    offline Kokoro (Japanese voices only) gives way to the hub's full Kokoro when its
    PyPI packages are not installed. The diarizer is included once it has been pulled
    into ``store``; until then diarized_json says how to get it.

    With ``preload``, the two models OpenAI clients name by default, ``whisper-1`` and
    ``tts-1``, load at start-up and stay loaded (keep-alive -1), so no request waits for
    them (about 180 and 120 MB of memory, 1-2 s of loading each on 2 cores); the others
    load on first use and follow the server's keep-alive (docs/benchmarks.md, P12)."""
    catalog = catalog or Catalog.builtin()
    kokoro = "kokoro-int8-ja" if _offline_kokoro(catalog) else "kokoro"
    kept = -1.0 if preload else None
    models = {
        "whisper-1": ModelConfig(model="whisper-base", preload=preload, keep_alive=kept),
        "whisper-tiny.en": ModelConfig(model="whisper-tiny.en"),
        "tts-1": ModelConfig(model="piper:en_US-joe-medium", preload=preload, keep_alive=kept),
        "kokoro": ModelConfig(model=kokoro),
    }
    if _diarizer_pulled(catalog, store):
        models["diarizer"] = ModelConfig(model=DIARIZER)
    return models
