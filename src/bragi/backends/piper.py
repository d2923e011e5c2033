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

Speed is native, through the voice's ``length_scale``. VITS rounds each phoneme id's
duration up to whole frames, so part of the duration does not scale (halving the length
scale of en_US-joe-medium gives 0.61 of the duration, not 0.5). That share is measured
once per voice file when a speed other than 1 is first asked for (two syntheses of one
sentence) and the length scale set to match the speed; above about 2.2x a voice can go
no faster. Text is cut with :func:`~bragi.backends.sentences.split_sentences` and
synthesized piece by piece: every sentence gives at least one chunk. All voices load
with the model; lower sample rates are resampled to the directory's highest.
"""

from __future__ import annotations

import json
import logging
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
from bragi.backends.support import installed, options_as
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
_CALIBRATION = "The quick brown fox jumps over the lazy dog."


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
        self.capabilities = TtsCapabilities(
            sample_rate=rate, languages=languages, max_native_speed=2.0
        )
        self._models = models
        self._speakers = {s.voice.id: s for s in speakers}
        self._aliases = aliases
        self._options = options
        self._shares: dict[str, float] = {}  # per voice file, see _fixed_share

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
        if not request.speed > 0:  # refuses NaN too
            raise InvalidRequestError("speed must be a positive number", param="speed")
        pieces = split_sentences(request.text)
        if not pieces:
            raise InvalidRequestError("input has no text to speak", param="input")
        return self._generate(speaker, pieces, request.speed)

    def _generate(self, speaker: _Speaker, pieces: list[str], speed: float) -> Iterator[Audio]:
        from piper import SynthesisConfig

        model, scale = self._models[speaker.model], 1.0
        if speed != 1.0:
            if speaker.model not in self._shares:  # a race only measures twice
                self._shares[speaker.model] = _fixed_share(model)
            scale = _scale_for(speed, self._shares[speaker.model])
        config = SynthesisConfig(
            speaker_id=speaker.speaker_id,
            length_scale=model.config.length_scale * scale,
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
        return installed("piper")

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

        opts = options_as(PiperOptions, options)
        files = _voice_files(model_dir)
        if not files:
            raise EngineError(f"No Piper voice (*.onnx with *.onnx.json) in {model_dir}")
        use_cuda = device == "cuda" and _cuda_available()
        models: dict[str, PiperVoice] = {}
        speakers: list[_Speaker] = []
        for path in files:
            try:
                config = _read_config(path)
                models[path.stem] = _load_voice(path, config, use_cuda)
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


def _fixed_share(model: PiperVoice) -> float:
    """The share of the voice's duration that does not scale with its length scale.

    Durations are linear in the length scale, ``d(x) = d(1) * (share + (1 - share) * x)``,
    so ``d(2) / d(1) = 2 - share``. Measured without duration noise; 0 if it cannot be.
    """
    from piper import SynthesisConfig

    def samples(scale: float) -> int:
        config = SynthesisConfig(length_scale=model.config.length_scale * scale, noise_w_scale=0.0)
        return sum(len(c.audio_float_array) for c in model.synthesize(_CALIBRATION, config))

    try:
        return min(max(2.0 - samples(2.0) / samples(1.0), 0.0), 0.6)
    except Exception:  # e.g. a phonemizer that needs extra packages: plain 1 / speed
        _LOG.debug("Cannot measure the speed response of a Piper voice", exc_info=True)
        return 0.0


def _scale_for(speed: float, share: float) -> float:
    """The length scale that makes speech ``1 / speed`` as long (at most ~2.2x faster)."""
    return max((1.0 / speed - share) / (1.0 - share), 0.1)


def _load_voice(model: Path, config: dict[str, Any], use_cuda: bool) -> PiperVoice:
    """``PiperVoice.load`` with Bragi's session options.

    ONNX Runtime's threads spin between runs by default; between Piper's short runs that
    burns the core the server needs to encode and send the previous sentence. Without
    spinning, Piper alone ran 13 % faster here and with mp3 encoded beside it 26 %
    (2 cores: 36.6 / 35.9 against 32.5 / 28.5 seconds of audio per second).
    """
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig
    from piper.phonemize_espeak import ESPEAK_DATA_DIR

    settings = onnxruntime.SessionOptions()
    settings.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers: list[str | tuple[str, dict[str, str]]] = ["CPUExecutionProvider"]
    if use_cuda:
        providers = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})]
    session = onnxruntime.InferenceSession(str(model), sess_options=settings, providers=providers)
    return PiperVoice(
        config=PiperConfig.from_dict(config),
        session=session,
        espeak_data_dir=Path(ESPEAK_DATA_DIR),
    )


def _cuda_available() -> bool:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return True
    _LOG.warning("device is cuda but onnxruntime has no CUDA provider; Piper runs on the CPU")
    return False


BACKEND: Backend = PiperBackend()
