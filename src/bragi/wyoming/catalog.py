"""What Bragi tells Wyoming clients it serves: the ``info`` event, and the voice table
behind it.

Home Assistant uses only the first program of each kind, so there is one speech-to-text
program (every STT model, by alias, with its languages, installed once its files are on
disk) and one text-to-speech program (every voice of every TTS model, and the cloned
voices). A voice's Wyoming name is ``<model alias>/<voice id>``, stable for as long as
the model is configured; a multi-speaker voice (Piper's ``voice:speaker`` ids) is one
entry with ``speakers``; a cloned voice keeps its own name. Languages are written the
way Home Assistant compares them: Whisper codes (``en``) for models, Piper's ``en_US``
for voices.

``describe`` must answer within Home Assistant's one second while models download or
load, so the answer is a snapshot kept in memory. It is rebuilt (in a thread: listing
a model's voices reads its files) when the models' states or the cloned voices change;
a ``describe`` waits for a rebuild at most :data:`REBUILD_WAIT` seconds and otherwise
gets the previous snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread

from bragi import __version__
from bragi.backends.protocol import ModelKind, SpeechToText, TextToSpeech, Voice
from bragi.config import WyomingSettings
from bragi.languages import LANGUAGES
from bragi.models.capabilities import models_that_can
from bragi.models.manager import ModelManager
from bragi.models.served import ModelState, ServedModel
from bragi.voices import StoredVoice, VoiceStore

__all__ = ["PROGRAM_NAME", "REBUILD_WAIT", "Catalog", "Snapshot", "VoiceEntry", "ha_language"]

log = logging.getLogger(__name__)

#: The name of both programs (Home Assistant names its entities after them).
PROGRAM_NAME = "bragi"
#: Longest a ``describe`` waits for a newer snapshot (Home Assistant gives up after 1 s).
REBUILD_WAIT = 0.25
_ATTRIBUTION = {"name": "Bragi", "url": ""}
_INSTALLED = (ModelState.AVAILABLE, ModelState.LOADING, ModelState.LOADED)
#: Backends that run Whisper checkpoints: a multilingual one understands Whisper's languages.
_WHISPER_BACKENDS = frozenset({"faster-whisper"})


def ha_language(tag: str) -> str:
    """A language tag the way Home Assistant's Wyoming voices write it: ``en-us`` and
    ``en_US`` ─▶ ``en_US``, ``ja`` ─▶ ``ja``."""
    primary, *rest = tag.replace("-", "_").split("_")
    return "_".join([primary.lower(), *(p.upper() if len(p) == 2 else p for p in rest)])


@dataclass(frozen=True, slots=True)
class VoiceEntry:
    """One voice in the ``info``, and where a request for it goes."""

    name: str  # the Wyoming name
    alias: str  # the model that speaks it
    voice: str  # the engine's voice id (for a multi-speaker voice, the part before ':')
    description: str
    languages: tuple[str, ...] = ()  # Home Assistant's style
    speakers: tuple[str, ...] = ()
    cloned: bool = False

    def engine_ids(self) -> tuple[str, ...]:
        """Every engine voice id this entry stands for."""
        if not self.speakers:
            return (self.voice,)
        return tuple(f"{self.voice}:{speaker}" for speaker in self.speakers)


@dataclass(frozen=True, slots=True)
class Snapshot:
    info: dict[str, Any]
    voices: tuple[VoiceEntry, ...] = ()
    by_name: dict[str, VoiceEntry] = field(default_factory=dict)


def _attribution(model: ServedModel) -> dict[str, str]:
    hub = model.source.hub
    url = f"https://huggingface.co/{hub.repo_id}" if hub is not None else ""
    return {"name": model.backend_name or "", "url": url}


def _description(model: ServedModel) -> str:
    entry = model.source.catalog
    return entry.description if entry and entry.description else model.config.model


def stt_languages(model: ServedModel) -> list[str]:
    """The languages a speech-to-text model understands, as Whisper codes."""
    entry = model.source.catalog
    if entry is not None and entry.languages:
        return [code.split("-")[0].lower() for code in entry.languages]
    if isinstance(model.engine, SpeechToText) and model.engine.capabilities.languages:
        return sorted(model.engine.capabilities.languages)
    if model.backend_name in _WHISPER_BACKENDS:
        return list(LANGUAGES)
    return []


def _model_languages(model: ServedModel) -> tuple[str, ...]:
    """A text-to-speech model's languages (for voices that do not say their own)."""
    if isinstance(model.engine, TextToSpeech) and model.engine.capabilities.languages:
        return tuple(sorted(ha_language(tag) for tag in model.engine.capabilities.languages))
    entry = model.source.catalog
    return tuple(ha_language(tag) for tag in entry.languages) if entry else ()


def _voice_entries(model: ServedModel, voices: Sequence[Voice]) -> list[VoiceEntry]:
    """A model's voices, multi-speaker ones (``base:speaker`` ids) grouped into one."""
    grouped: dict[str, list[Voice]] = {}
    for voice in voices:
        grouped.setdefault(voice.id.partition(":")[0], []).append(voice)
    entries = []
    fallback = _model_languages(model)
    for base, members in grouped.items():
        first = members[0]
        speakers = tuple(v.id.partition(":")[2] for v in members if ":" in v.id)
        languages = tuple(dict.fromkeys(ha_language(v.language) for v in members if v.language))
        details = ", ".join(filter(None, [model.alias, first.gender]))
        entries.append(
            VoiceEntry(
                name=f"{model.alias}/{base}",
                alias=model.alias,
                voice=base,
                description=f"{base} ({details})",
                languages=languages or fallback,
                speakers=speakers,
            )
        )
    return entries


class Catalog:
    """The snapshot of what is served, rebuilt when the models or cloned voices change."""

    def __init__(self, manager: ModelManager, store: VoiceStore, config: WyomingSettings):
        self.manager = manager
        self.store = store
        self.config = config
        self.snapshot = Snapshot(info={})
        #: Models that clone voices (known from their files or catalog entry before they
        #: load), with their languages.
        self.cloners: dict[str, tuple[str, ...]] = {}
        self._built_for: Hashable = None
        self._building: asyncio.Future[None] | None = None

    # --- keeping it current ---------------------------------------------------

    def fingerprint(self) -> Hashable:
        """What the snapshot depends on, read from memory and one ``stat``."""
        models = tuple(
            (m.alias, m.state, m.kind, id(m.engine), m.model_dir) for m in self.manager.models()
        )
        try:
            voices = self.store.root.stat().st_mtime_ns
        except OSError:
            voices = None
        return models, voices

    async def current(self, wait: float = REBUILD_WAIT) -> Snapshot:
        """The newest snapshot, rebuilt first (for at most ``wait`` seconds) when stale."""
        fingerprint = self.fingerprint()
        if fingerprint != self._built_for:
            if self._building is None:
                self._building = asyncio.ensure_future(self._rebuild(fingerprint))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._building), wait)
        return self.snapshot

    async def _rebuild(self, fingerprint: Hashable) -> None:
        try:
            self.snapshot = await to_thread.run_sync(self.build)
        except Exception:  # a model's files unreadable: the last snapshot until a change
            log.exception("rebuilding the Wyoming info failed")
        finally:
            self._built_for = fingerprint
            self._building = None

    async def close(self) -> None:
        if self._building is not None:
            await asyncio.gather(self._building, return_exceptions=True)

    # --- building ---------------------------------------------------------------

    def _stt_models(self) -> list[ServedModel]:
        models = [m for m in self.manager.models() if m.kind is ModelKind.STT]
        # The default first: some clients take the first model as the default.
        models.sort(key=lambda m: m.alias != self.config.stt_model)
        return models

    def build(self) -> Snapshot:
        """A new snapshot (blocking: reads voice listings and the voice store)."""
        voices: list[VoiceEntry] = []
        tts_models = [m for m in self.manager.models() if m.kind is ModelKind.TTS]
        able = set(models_that_can(tts_models, "cloning", self.manager.registry))
        self.cloners = {m.alias: _model_languages(m) for m in tts_models if m.alias in able}
        for model in tts_models:
            if model.state in _INSTALLED:
                voices.extend(_voice_entries(model, self.manager.voices_of(model) or ()))
        public = [voice for voice in self.store.list() if self.is_public(voice)]
        voices.extend(self._cloned_entries(public, tts_models))
        info: dict[str, Any] = {key: [] for key in ("asr", "tts", "handle", "intent", "wake")}
        info |= {"mic": [], "snd": []}
        stt_models = self._stt_models()
        if stt_models:
            info["asr"].append(self._asr_program(stt_models))
        if tts_models:
            info["tts"].append(self._tts_program(voices))
        return Snapshot(info, tuple(voices), {v.name: v for v in voices})

    def is_public(self, voice: StoredVoice) -> bool:
        """Whether Wyoming, which has no keys, may offer a cloned voice: a shared one, or
        any when the server's API keys are off too."""
        return voice.shared or not self.manager.settings.auth_enabled

    def _cloned_entries(
        self, stored: list[StoredVoice], tts_models: list[ServedModel]
    ) -> list[VoiceEntry]:
        """Cloned voices, each spoken by the model it was made for, else by the first
        model that clones; left out while no model can."""
        aliases = {m.alias for m in tts_models}
        entries = []
        for voice in stored:
            alias = voice.model if voice.model in aliases else next(iter(self.cloners), None)
            if alias is None:
                continue
            languages = self.cloners.get(alias) or _model_languages(self.manager.get(alias))
            entries.append(
                VoiceEntry(
                    name=voice.name,
                    alias=alias,
                    voice=voice.name,
                    description=f"{voice.name} (cloned voice, {alias})",
                    languages=languages,
                    cloned=True,
                )
            )
        return entries

    def _asr_program(self, models: list[ServedModel]) -> dict[str, Any]:
        return {
            "name": PROGRAM_NAME,
            "attribution": _ATTRIBUTION,
            "installed": True,
            "description": "Bragi speech to text",
            "version": __version__,
            "models": [
                {
                    "name": model.alias,
                    "attribution": _attribution(model),
                    "installed": model.state in _INSTALLED,
                    "description": _description(model),
                    "version": None,
                    "languages": stt_languages(model),
                }
                for model in models
            ],
            "supports_transcript_streaming": self.config.transcript_streaming,
            "requires_external_vad": True,
            "prefers_auto_gain_enabled": True,
            "prefers_noise_reduction_enabled": True,
        }

    def _tts_program(self, voices: list[VoiceEntry]) -> dict[str, Any]:
        entries = []
        for voice in voices:
            entry: dict[str, Any] = {
                "name": voice.name,
                "attribution": {"name": voice.alias, "url": ""},
                "installed": True,
                "description": voice.description,
                "version": None,
                "languages": list(voice.languages),
            }
            if voice.speakers:
                entry["speakers"] = [{"name": speaker} for speaker in voice.speakers]
            entries.append(entry)
        return {
            "name": PROGRAM_NAME,
            "attribution": _ATTRIBUTION,
            "installed": True,
            "description": "Bragi text to speech",
            "version": __version__,
            "voices": entries,
            "supports_synthesize_streaming": True,
        }
