"""Which model (and voice) answers a Wyoming request.

Home Assistant sends only a ``language`` with speech to text, never a model name, and
only a voice name with text to speech, never a language (see the reference notes in
docs/wyoming.md). So:

* speech to text: the model the request names (an alias), else the one ``wyoming.
  stt_models`` maps its language to, else ``wyoming.stt_model``, else the first
  speech-to-text model;
* text to speech: the voice the request names (a Wyoming name ``alias/voice``, an
  engine voice id, a configured or OpenAI voice name, or a cloned voice), else the one
  ``wyoming.tts_voices`` maps its language to, else the first voice that speaks it,
  else ``wyoming.tts_voice``, else the first voice of the first text-to-speech model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from bragi.backends.protocol import ModelKind
from bragi.config import Settings, WyomingSettings
from bragi.errors import (
    ConfigError,
    InvalidRequestError,
    ModelNotFoundError,
    UnknownVoiceError,
    UnsupportedCapabilityError,
)
from bragi.languages import language_code
from bragi.models.manager import ModelManager
from bragi.models.openai_voices import OPENAI_VOICES
from bragi.wyoming.catalog import PROGRAM_NAME, Catalog, Snapshot, VoiceEntry
from bragi.wyoming.events import VoiceData

__all__ = ["Chooser", "VoicePlan", "check_settings"]

_SHOWN_VOICES = 12


@dataclass(frozen=True, slots=True)
class VoicePlan:
    """Where a synthesis goes: the model, and the voice as ``bragi.voices.choose_voice``
    takes it (None: the engine's first voice)."""

    alias: str
    voice: str | None
    language: str | None = None  # BCP 47, only when the client asked for a language


def _normal(tag: str) -> str:
    return tag.strip().lower().replace("_", "-")


def _by_language(mapping: Mapping[str, str], language: str) -> str | None:
    """``mapping``'s value for ``language``, or for its primary subtag."""
    table = {_normal(key): value for key, value in mapping.items()}
    tag = _normal(language)
    return table.get(tag) or table.get(tag.split("-")[0])


def _stt_code(language: str) -> str:
    code = language_code(_normal(language).split("-")[0])
    if code is None:
        raise UnsupportedCapabilityError(
            f"Unknown language {language!r}; use an ISO 639-1 code such as 'en'.",
            param="language",
        )
    return code


def check_settings(config: WyomingSettings, manager: ModelManager) -> None:
    """Refuse at start-up a ``wyoming:`` section that names a model that is not served."""
    named = {"wyoming.stt_model": config.stt_model} | {
        f"wyoming.stt_models.{language}": alias for language, alias in config.stt_models.items()
    }
    for key, alias in named.items():
        if alias is None:
            continue
        try:
            model = manager.get(alias)
        except ModelNotFoundError:
            served = ", ".join(m.alias for m in manager.models())
            raise ConfigError(
                f"invalid configuration: {key}: no model `{alias}` is served ({served})"
            ) from None
        if model.kind is ModelKind.TTS:
            raise ConfigError(f"invalid configuration: {key}: `{alias}` is a text-to-speech model")


class Chooser:
    def __init__(self, catalog: Catalog, settings: Settings):
        self.catalog = catalog
        self.manager = catalog.manager
        self.store = catalog.store
        self.settings = settings
        self.config = settings.wyoming

    # --- speech to text -----------------------------------------------------------

    def stt_model(self, name: str | None, language: str | None) -> tuple[str, str | None]:
        """The model alias and the ISO 639-1 language for a ``transcribe``."""
        code = _stt_code(language) if language else None
        if name == PROGRAM_NAME:  # the program, not a model: no choice made
            name = None
        if name:
            if self.manager.get(name).kind is ModelKind.TTS:
                raise InvalidRequestError(
                    f"Model `{name}` is a text-to-speech model; name a speech-to-text model.",
                    param="name",
                    code="model_kind_mismatch",
                )
            return name, code
        mapped = _by_language(self.config.stt_models, code) if code else None
        alias = mapped or self.config.stt_model
        if alias is None:
            first = next((m for m in self.manager.models() if m.kind is ModelKind.STT), None)
            if first is None:
                raise ModelNotFoundError("This server has no speech-to-text model.")
            alias = first.alias
        return alias, code

    # --- text to speech -----------------------------------------------------------

    def voice(self, requested: VoiceData | None, snapshot: Snapshot) -> VoicePlan:
        """Where a ``synthesize`` goes (blocking: a cloned voice is looked up on disk)."""
        requested = requested or VoiceData()
        if requested.name:
            return self._named(requested.name, requested.speaker, snapshot, requested.language)
        if requested.language:
            language = requested.language
            configured = _by_language(self.config.tts_voices, language)
            if configured:
                return self._named(configured, None, snapshot, None)
            speaking = self._speaking(language, snapshot)
            if speaking is not None:
                return speaking
            # Nobody speaks it natively: the default voice is asked to (or refuses).
            default = self._default(snapshot)
            return dataclasses.replace(default, language=language.replace("_", "-"))
        return self._default(snapshot)

    def _named(
        self, name: str, speaker: str | None, snapshot: Snapshot, language: str | None
    ) -> VoicePlan:
        language = language.replace("_", "-") if language else None
        entry = snapshot.by_name.get(name)
        if entry is not None:
            voice = entry.voice if entry.cloned else _engine_voice(entry, speaker)
            return VoicePlan(entry.alias, voice, language)
        for entry in snapshot.voices:
            if entry.cloned:
                continue
            if name in entry.engine_ids():
                return VoicePlan(entry.alias, name, language)
            if name == entry.voice:
                return VoicePlan(entry.alias, _engine_voice(entry, speaker), language)
        mapping = self.settings.voices.get(name)
        if mapping is not None:
            return VoicePlan(mapping.model, mapping.voice, language)
        if name in OPENAI_VOICES:  # mapped onto the default model's voices by gender
            return dataclasses.replace(self._first_voice(snapshot), voice=name, language=language)
        cloned = self.store.find(name)
        if cloned is not None and self.catalog.is_public(cloned):
            return VoicePlan(self._cloner(cloned.model), cloned.name, language)
        names = [v.name for v in snapshot.voices[:_SHOWN_VOICES]]
        more = ", ..." if len(snapshot.voices) > _SHOWN_VOICES else ""
        raise UnknownVoiceError(
            f"Voice {name!r} does not exist. Voices: {', '.join(names)}{more} "
            "(describe lists them all).",
            param="voice",
        )

    def _cloner(self, made_for: str | None) -> str:
        aliases = {m.alias for m in self.manager.models() if m.kind is ModelKind.TTS}
        if made_for in aliases:
            assert made_for is not None
            return made_for
        known = next((alias for alias in self.catalog.cloners if alias in aliases), None)
        if known is None:
            raise UnsupportedCapabilityError(
                "That is a cloned voice, and no model served here can clone voices; "
                "serve one (XTTS, for one) or make the voice for a model.",
                param="voice",
            )
        return known

    def _speaking(self, language: str, snapshot: Snapshot) -> VoicePlan | None:
        """The first voice that speaks ``language`` (the exact tag, else the language)."""
        tag = _normal(language)
        for wanted, cut in ((tag, False), (tag.split("-")[0], True)):
            for entry in snapshot.voices:
                spoken = (_normal(lang) for lang in entry.languages)
                if not entry.cloned and any(
                    (lang.split("-")[0] if cut else lang) == wanted for lang in spoken
                ):
                    return VoicePlan(entry.alias, _engine_voice(entry, None))
        return None

    def _default(self, snapshot: Snapshot) -> VoicePlan:
        if self.config.tts_voice:
            return self._named(self.config.tts_voice, None, snapshot, None)
        return self._first_voice(snapshot)

    def _first_voice(self, snapshot: Snapshot) -> VoicePlan:
        entry = next((e for e in snapshot.voices if not e.cloned), None)
        if entry is not None:
            return VoicePlan(entry.alias, _engine_voice(entry, None))
        model = next((m for m in self.manager.models() if m.kind is ModelKind.TTS), None)
        if model is None:
            raise ModelNotFoundError("This server has no text-to-speech model.")
        return VoicePlan(model.alias, None)  # its voices are not known until it loads


def _speaker_index(speaker: str) -> int | None:
    """A speaker given by number ("0", "1"); ASCII digits only: ``str.isdigit`` also takes
    "\u00b2", which ``int`` refuses."""
    if speaker.isascii() and speaker.isdigit() and len(speaker) <= 6:
        return int(speaker)
    return None


def _engine_voice(entry: VoiceEntry, speaker: str | None) -> str:
    """The engine voice id for ``entry`` and a Wyoming ``speaker`` (a name, or an index)."""
    if not entry.speakers:
        return entry.voice
    if speaker is None:
        return f"{entry.voice}:{entry.speakers[0]}"
    if speaker in entry.speakers:
        return f"{entry.voice}:{speaker}"
    index = _speaker_index(speaker)
    if index is not None and index < len(entry.speakers):
        return f"{entry.voice}:{entry.speakers[index]}"
    raise UnknownVoiceError(
        f"Voice {entry.name!r} has no speaker {speaker!r}; speakers: {', '.join(entry.speakers)}.",
        param="speaker",
    )
