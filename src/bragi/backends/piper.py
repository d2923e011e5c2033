"""Piper voices through ``piper-tts`` (extra ``piper``; piper-tts is GPL-3.0).

A Piper model directory holds one or more voices, each an ``<name>.onnx`` file with
its ``<name>.onnx.json`` config beside it. Voice ids:

* a single-speaker file is one voice named by its file stem (``en_US-joe-medium``);
* a multi-speaker file exposes every speaker as ``<stem>:<speaker>``, where the
  speaker is its name in the config's ``speaker_id_map`` (or its number when the map
  is empty). These ids stay the same when more voice files join the directory.

Two shorthands are accepted as well but not listed: ``<stem>`` alone picks a
multi-speaker file's default speaker, and when the directory holds a single file,
a bare speaker name picks that speaker.

Speed is native: the voice's ``length_scale`` divided by the requested speed. Text
is cut with :func:`~bragi.backends.sentences.split_sentences` and synthesized one
piece at a time, so every sentence becomes at least one chunk. All voices are loaded
with the model; voices with a lower sample rate than the highest one in the
directory are resampled to it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from bragi.audio.types import Audio, Samples
from bragi.backends.protocol import (
    Backend,
    BackendOptions,
    Device,
    ModelKind,
    SynthesisRequest,
    TtsCapabilities,
    Voice,
)
from bragi.backends.sentences import split_sentences
from bragi.errors import (
    EngineError,
    InvalidRequestError,
    UnknownVoiceError,
    UnsupportedCapabilityError,
)

if TYPE_CHECKING:
    from piper import PiperVoice, SynthesisConfig

__all__ = ["BACKEND", "PiperBackend", "PiperEngine", "PiperOptions", "language_tag"]

_LOG = logging.getLogger(__name__)


class PiperOptions(BackendOptions):
    """``options:`` of a Piper model."""

    noise_scale: float | None = Field(default=None, ge=0)
    """Generator noise; the voice config's value when unset."""
    noise_w: float | None = Field(default=None, ge=0)
    """Phoneme width noise; the voice config's value when unset."""
    sentence_silence: float = Field(default=0.0, ge=0, le=10)
    """Seconds of silence put between sentences."""


@dataclass(frozen=True, slots=True)
class _Speaker:
    voice: Voice
    model: str  # file stem
    speaker_id: int | None  # None for single-speaker files


def language_tag(code: str) -> str:
    """Piper's ``en_US`` or espeak's ``en-us`` as a BCP 47 tag: ``en-US``."""
    primary, *rest = code.replace("_", "-").split("-")
    return "-".join([primary.lower(), *(p.upper() if len(p) == 2 else p for p in rest)])


def _voice_files(model_dir: Path) -> list[Path]:
    """The ``*.onnx`` files in ``model_dir`` that have a ``*.onnx.json`` beside them."""
    if not model_dir.is_dir():
        return []
    return sorted(p for p in model_dir.glob("*.onnx") if _config_path(p).is_file())


def _config_path(model: Path) -> Path:
    return model.with_name(model.name + ".json")


def _read_config(model: Path) -> dict[str, Any]:
    try:
        config: dict[str, Any] = json.loads(_config_path(model).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EngineError(f"Cannot read the Piper config of {model.name}: {exc}") from exc
    return config


def _speakers(stem: str, config: dict[str, Any]) -> list[_Speaker]:
    """The voices one config declares: the file itself, or each of its speakers."""
    language_info = config.get("language") or {}
    code = language_info.get("code") or (config.get("espeak") or {}).get("voice")
    language = language_tag(code) if isinstance(code, str) and code else None
    count = int(config.get("num_speakers", 1))
    if count <= 1:
        return [_Speaker(Voice(stem, language), stem, None)]
    names: dict[str, int] = config.get("speaker_id_map") or {str(i): i for i in range(count)}
    return [
        _Speaker(Voice(f"{stem}:{name}", language), stem, int(sid))
        for name, sid in sorted(names.items(), key=lambda item: item[1])
    ]


class PiperEngine:
    """Loaded Piper voices; synthesizes one chunk per sentence or finer."""

    def __init__(
        self,
        models: dict[str, PiperVoice],
        speakers: Sequence[_Speaker],
        aliases: dict[str, _Speaker],
        options: PiperOptions,
    ) -> None:
        rate = max(model.config.sample_rate for model in models.values())
        languages = frozenset(s.voice.language for s in speakers if s.voice.language)
        self.capabilities = TtsCapabilities(sample_rate=rate, languages=languages)
        self._models = models
        self._speakers = {s.voice.id: s for s in speakers}
        self._aliases = aliases
        self._options = options

    def voices(self) -> Sequence[Voice]:
        return [s.voice for s in self._speakers.values()]

    def synthesize(self, request: SynthesisRequest) -> Iterator[Audio]:
        """Check the request now, then synthesize lazily, one piece of text at a time."""
        speaker = self._speakers.get(request.voice) or self._aliases.get(request.voice)
        if speaker is None:
            available = ", ".join(self._speakers)
            raise UnknownVoiceError(
                f"Voice {request.voice!r} does not exist; available voices: {available}",
                param="voice",
            )
        wanted, spoken = request.language, speaker.voice.language
        if wanted and spoken and language_tag(wanted).split("-")[0] != spoken.split("-")[0]:
            raise UnsupportedCapabilityError(
                f"Piper voice {speaker.voice.id!r} speaks {spoken} only, not {wanted}",
                param="language",
            )
        if not (math.isfinite(request.speed) and request.speed > 0):
            raise InvalidRequestError("speed must be a positive number", param="speed")
        pieces = split_sentences(request.text)
        if not pieces:
            raise InvalidRequestError("input has no text to speak", param="input")
        return self._generate(speaker, pieces, request.speed)

    def _generate(self, speaker: _Speaker, pieces: list[str], speed: float) -> Iterator[Audio]:
        from piper import SynthesisConfig

        model = self._models[speaker.model]
        config = SynthesisConfig(
            speaker_id=speaker.speaker_id,
            length_scale=model.config.length_scale / speed,
            noise_scale=self._options.noise_scale,
            noise_w_scale=self._options.noise_w,
        )
        rate = self.capabilities.sample_rate
        gap = np.zeros(round(self._options.sentence_silence * rate), dtype=np.float32)
        first = True
        for piece in pieces:
            for samples in self._speak(model, piece, config, rate):
                yield Audio(samples if first else np.concatenate([gap, samples]), rate)
                first = False

    @staticmethod
    def _speak(model: PiperVoice, text: str, config: SynthesisConfig, rate: int) -> list[Samples]:
        try:
            chunks = [c.audio_float_array for c in model.synthesize(text, config)]
        except Exception as exc:  # the library boundary: onnxruntime, espeak
            raise EngineError(f"Piper failed to synthesize {text[:40]!r}: {exc}") from exc
        arrays = [np.ascontiguousarray(c, dtype=np.float32).reshape(-1) for c in chunks]
        if model.config.sample_rate != rate:
            import soxr

            arrays = [soxr.resample(a, model.config.sample_rate, rate) for a in arrays]
        return [a.astype(np.float32, copy=False) for a in arrays if a.size]

    def close(self) -> None:
        self._models.clear()


class PiperBackend:
    """Recognises and loads Piper voice directories."""

    name: str = "piper"
    kind: ModelKind = ModelKind.TTS
    extra: str = "piper"
    options_model: type[BackendOptions] = PiperOptions

    def is_available(self) -> bool:
        return importlib.util.find_spec("piper") is not None

    def detect(self, model_dir: Path) -> bool:
        return bool(_voice_files(model_dir))

    def voices_in(self, model_dir: Path, options: BackendOptions | None) -> Sequence[Voice]:
        """The voices of a model on disk, from the configs, without loading it."""
        return [
            speaker.voice
            for path in _voice_files(model_dir)
            for speaker in _speakers(path.stem, _read_config(path))
        ]

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> PiperEngine:
        from piper import PiperVoice

        opts = PiperOptions.model_validate(options.model_dump())
        files = _voice_files(model_dir)
        if not files:
            raise EngineError(f"No Piper voice (*.onnx with *.onnx.json) in {model_dir}")
        use_cuda = device == "cuda" and _cuda_available()
        models: dict[str, PiperVoice] = {}
        speakers: list[_Speaker] = []
        for path in files:
            try:
                config = _read_config(path)
                models[path.stem] = PiperVoice.load(path, _config_path(path), use_cuda=use_cuda)
            except Exception as exc:  # the library boundary: bad JSON, bad ONNX
                raise EngineError(f"Cannot load Piper voice {path.name}: {exc}") from exc
            speakers.extend(_speakers(path.stem, config))
        aliases = _aliases(speakers, single_file=len(files) == 1)
        return PiperEngine(models, speakers, aliases, opts)


def _aliases(speakers: list[_Speaker], *, single_file: bool) -> dict[str, _Speaker]:
    """The unlisted shorthands: ``<stem>`` for a default speaker, bare speaker names."""
    aliases: dict[str, _Speaker] = {}
    for speaker in speakers:
        if speaker.speaker_id is None:
            continue
        # No speaker id: piper then uses the config's default_speaker_id.
        aliases[speaker.model] = _Speaker(
            Voice(speaker.model, speaker.voice.language), speaker.model, None
        )
        if single_file:
            aliases[speaker.voice.id.partition(":")[2]] = speaker
    return aliases


def _cuda_available() -> bool:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return True
    _LOG.warning("device is cuda but onnxruntime has no CUDA provider; Piper runs on the CPU")
    return False


BACKEND: Backend = PiperBackend()
