"""Kokoro-82M through ONNX Runtime, with ``kokoro-onnx``'s espeak phonemizer (extra ``kokoro``).

Two model directory layouts are recognised (neither holds a Piper ``*.onnx.json``):

* a bundle: a Kokoro ``*.onnx`` model (e.g. ``kokoro-v1.0.int8.onnx``) and a voices
  bundle, ``*.npz`` or ``voices*.bin`` (an npz: voice name to a (510, 1, 256) array);
* the hub layout of ``onnx-community/Kokoro-82M-v1.0-ONNX``: ``onnx/model*.onnx``
  and ``voices/<name>.bin``, each raw little-endian float32 of shape (-1, 1, 256).

Several model files are variants (``fp32`` for ``model.onnx``, ``quantized`` for
``model_quantized.onnx``, or a bundle file's stem). Unless the ``variant`` option
names one, int8 is preferred on the CPU and fp32 on CUDA. Models taking ``tokens``
or ``input_ids`` both work: the session is run here, not by ``kokoro-onnx``.

Voice ids are the names in the bundle or the file stems. The first letter of a name
gives its language (a = en-US, b = en-GB, e = es, f = fr-FR, h = hi, i = it, j = ja,
p = pt-BR, z = Mandarin), the second its gender (f/m). Text is phonemized with
espeak-ng, which serves every language but Japanese and Mandarin: Kokoro learnt
those from misaki's phonemes, which Bragi does not ship. A ``j`` or ``z`` voice
therefore speaks English (en-us) with its accent unless the ``language`` option or
a request says otherwise, and a request asking for ``ja`` or ``zh`` is refused.
Voices are listed with the language they actually speak.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, field_validator

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
    ConfigError,
    EngineError,
    InvalidRequestError,
    UnknownVoiceError,
    UnsupportedCapabilityError,
)

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["BACKEND", "SAMPLE_RATE", "KokoroBackend", "KokoroEngine", "KokoroOptions"]

SAMPLE_RATE = 24_000
_LOG = logging.getLogger(__name__)
_STYLE_SIZE = 256
_MAX_TOKENS = 510  # the model's context, less the two padding tokens
#: espeak language code -> BCP 47 tag, for the languages Kokoro speaks through espeak
_LANGUAGES = {
    "en-us": "en-US",
    "en-gb": "en-GB",
    "es": "es",
    "fr-fr": "fr-FR",
    "hi": "hi",
    "it": "it",
    "pt-br": "pt-BR",
}
_PRIMARY = {"en": "en-us", "es": "es", "fr": "fr-fr", "hi": "hi", "it": "it", "pt": "pt-br"}
_VOICE_PREFIX = {
    "a": "en-us",
    "b": "en-gb",
    "e": "es",
    "f": "fr-fr",
    "h": "hi",
    "i": "it",
    "p": "pt-br",
}
_GENDERS: dict[str, Literal["female", "male"]] = {"f": "female", "m": "male"}
_FALLBACK_LANGUAGE = "en-us"
_QUANTIZED = {"quantized", "int8", "uint8"}
_REDUCED = {"fp16", "q4", "q4f16", "q8f16", "uint8f16", "bnb4"}


def espeak_language(tag: str) -> str | None:
    """The espeak code Kokoro uses for a language tag (``en``, ``en-GB``, ``pt_BR``), if any."""
    code = tag.strip().lower().replace("_", "-")
    return code if code in _LANGUAGES else _PRIMARY.get(code.split("-")[0])


class KokoroOptions(BackendOptions):
    """``options:`` of a Kokoro model."""

    language: str | None = None
    """Language for every voice (e.g. ``en-us``), instead of the one its name implies."""
    variant: str | None = None
    """Which model file: ``fp32``, ``quantized``, ``fp16``, ... or a file name."""
    threads: int | None = Field(default=None, ge=1)
    """ONNX Runtime intra-op threads; all cores when unset."""
    sentence_pause: float = Field(default=0.25, ge=0, le=5)
    """Seconds of silence between sentences, at speed 1."""

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        if value is not None and espeak_language(value) is None:
            raise ValueError(f"Kokoro speaks {', '.join(_LANGUAGES.values())}; not {value!r}")
        return value


class KokoroEngine:
    """A loaded Kokoro model; synthesizes one chunk per sentence or finer."""

    capabilities = TtsCapabilities(
        sample_rate=SAMPLE_RATE, languages=frozenset(_LANGUAGES.values())
    )

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        phonemize: Callable[[str, str], str],
        vocab: dict[str, int],
        styles: dict[str, Samples],
        options: KokoroOptions,
    ) -> None:
        inputs = {i.name: i.type for i in session.get_inputs()}
        token_input = next((n for n in ("input_ids", "tokens") if n in inputs), None)
        if token_input is None or not {"style", "speed"} <= inputs.keys():
            raise EngineError(f"Not a Kokoro model: its inputs are {sorted(inputs)}")
        self._session = session
        self._token_input = token_input
        self._speed_is_int = "int" in inputs["speed"]
        self._phonemize = phonemize
        self._vocab = vocab
        self._styles = styles
        self._options = options
        forced = espeak_language(options.language) if options.language else None
        self._defaults = {name: forced or _voice_language(name) for name in sorted(styles)}

    def voices(self) -> Sequence[Voice]:
        return [
            Voice(name, _LANGUAGES[language], _GENDERS.get(name[1:2]))
            for name, language in self._defaults.items()
        ]

    def synthesize(self, request: SynthesisRequest) -> Iterator[Audio]:
        """Check the request now, then synthesize lazily, one piece of text at a time."""
        if request.voice not in self._styles:
            raise UnknownVoiceError(
                f"Voice {request.voice!r} does not exist; "
                f"available voices: {', '.join(self._defaults)}",
                param="voice",
            )
        language = self._defaults[request.voice]
        if request.language is not None:
            requested = espeak_language(request.language)
            if requested is None:
                raise UnsupportedCapabilityError(
                    f"Kokoro cannot speak {request.language!r} here; it speaks "
                    f"{', '.join(_LANGUAGES.values())} (Japanese and Mandarin need misaki)",
                    param="language",
                )
            language = requested
        if not (math.isfinite(request.speed) and request.speed > 0):
            raise InvalidRequestError("speed must be a positive number", param="speed")
        pieces = split_sentences(request.text)
        if not pieces:
            raise InvalidRequestError("input has no text to speak", param="input")
        return self._generate(pieces, self._styles[request.voice], language, request.speed)

    def _generate(
        self, pieces: list[str], style: Samples, language: str, speed: float
    ) -> Iterator[Audio]:
        from kokoro_onnx.trim import trim

        gap = np.zeros(round(self._options.sentence_pause / speed * SAMPLE_RATE), np.float32)
        first = True
        for piece in pieces:
            for raw in self._speak(piece, style, language, speed):
                samples = np.asarray(trim(raw)[0], dtype=np.float32)
                if samples.size:
                    yield Audio(samples if first else np.concatenate([gap, samples]), SAMPLE_RATE)
                    first = False

    def _speak(self, text: str, style: Samples, language: str, speed: float) -> list[Samples]:
        """Raw audio for ``text``, halving the text until each part fits the context."""
        try:
            phonemes = self._phonemize(text, language)
        except Exception as exc:  # the library boundary: espeak, phonemizer
            raise EngineError(f"Kokoro could not phonemize {text[:40]!r}: {exc}") from exc
        tokens = [self._vocab[p] for p in phonemes if p in self._vocab]
        if len(tokens) > _MAX_TOKENS and len(text) > 1:
            halves = split_sentences(text, max_chars=len(text) // 2, first_max_chars=len(text))
            return [audio for half in halves for audio in self._speak(half, style, language, speed)]
        return [self._infer(tokens[:_MAX_TOKENS], style, speed)] if tokens else []

    def _infer(self, tokens: list[int], style: Samples, speed: float) -> Samples:
        rows = style.reshape(-1, _STYLE_SIZE)
        inputs = {
            self._token_input: np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": rows[min(len(tokens), len(rows)) - 1 : min(len(tokens), len(rows))],
            "speed": np.array([max(1, round(speed))], np.int32)
            if self._speed_is_int
            else np.array([speed], np.float32),
        }
        try:
            outputs = self._session.run(None, inputs)
        except Exception as exc:  # the library boundary: onnxruntime
            raise EngineError(f"Kokoro inference failed: {exc}") from exc
        return np.asarray(outputs[0], dtype=np.float32).reshape(-1)

    def close(self) -> None:
        self._styles.clear()


def _voice_language(name: str) -> str:
    return _VOICE_PREFIX.get(name[:1].lower(), _FALLBACK_LANGUAGE)


def _layout(model_dir: Path) -> tuple[list[Path], list[Path], bool] | None:
    """(model files, voice files, one file per voice) if ``model_dir`` is a Kokoro model."""
    if not model_dir.is_dir() or any(model_dir.glob("*.onnx.json")):
        return None  # not a directory, or a Piper voice
    hub_models = sorted((model_dir / "onnx").glob("model*.onnx"))
    hub_voices = sorted((model_dir / "voices").glob("*.bin"))
    if hub_models and hub_voices:
        return hub_models, hub_voices, True
    models = sorted(model_dir.glob("*.onnx"))
    bundles = sorted({*model_dir.glob("*.npz"), *model_dir.glob("voices*.bin")})
    return (models, bundles, False) if models and bundles else None


def _variant(path: Path) -> str:
    """``fp32`` for ``model.onnx``, ``quantized`` for ``model_quantized.onnx``, else the stem."""
    if path.stem == "model":
        return "fp32"
    return path.stem.removeprefix("model_") if path.stem.startswith("model_") else path.stem


def _pick_model(models: list[Path], variant: str | None, device: Device) -> Path:
    if variant is not None:
        for path in models:
            if variant in (_variant(path), path.name, path.stem):
                return path
        known = ", ".join(_variant(p) for p in models)
        raise ConfigError(f"Kokoro has no variant {variant!r}; this model has: {known}")

    def rank(path: Path) -> tuple[int, str]:
        marks = set(re.split(r"[._-]", path.stem.lower()))
        kind = "int8" if marks & _QUANTIZED else "reduced" if marks & _REDUCED else "fp32"
        order = ("fp32", "reduced", "int8") if device == "cuda" else ("int8", "fp32", "reduced")
        return order.index(kind), path.name

    return min(models, key=rank)


def _load_styles(files: list[Path], per_voice: bool) -> dict[str, Samples]:
    styles: dict[str, Samples] = {}
    for path in files:
        if per_voice:
            styles[path.stem] = np.fromfile(path, dtype="<f4")
            continue
        with np.load(path, allow_pickle=False) as bundle:
            styles.update({name: np.asarray(bundle[name], np.float32) for name in bundle.files})
    for name, style in styles.items():
        if style.size == 0 or style.size % _STYLE_SIZE:
            raise EngineError(f"Kokoro voice {name!r} is not a stack of {_STYLE_SIZE}-d styles")
        styles[name] = style.reshape(-1, 1, _STYLE_SIZE)
    return styles


def _vocabulary(model_dir: Path, session: onnxruntime.InferenceSession) -> dict[str, int]:
    """config.json's vocab, else the one in the model's metadata, else kokoro-onnx's."""
    from kokoro_onnx.config import DEFAULT_VOCAB

    config = model_dir / "config.json"
    sources = [
        config.read_text(encoding="utf-8") if config.is_file() else None,
        session.get_modelmeta().custom_metadata_map.get("kokoro_config"),
    ]
    for source in sources:
        vocab = json.loads(source).get("vocab") if source else None
        if isinstance(vocab, dict) and vocab:
            return {str(k): int(v) for k, v in vocab.items()}
    return dict(DEFAULT_VOCAB)


class KokoroBackend:
    """Recognises and loads Kokoro ONNX models with their voices."""

    name: str = "kokoro"
    kind: ModelKind = ModelKind.TTS
    extra: str = "kokoro"
    options_model: type[BackendOptions] = KokoroOptions

    def is_available(self) -> bool:
        return all(importlib.util.find_spec(m) for m in ("kokoro_onnx", "onnxruntime"))

    def detect(self, model_dir: Path) -> bool:
        return _layout(model_dir) is not None

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> KokoroEngine:
        import onnxruntime
        from kokoro_onnx.tokenizer import Tokenizer

        opts = KokoroOptions.model_validate(options.model_dump())
        layout = _layout(model_dir)
        if layout is None:
            raise EngineError(f"No Kokoro model (an .onnx model and its voices) in {model_dir}")
        model_files, voice_files, per_voice = layout
        path = _pick_model(model_files, opts.variant, device)
        settings = onnxruntime.SessionOptions()
        settings.intra_op_num_threads = opts.threads or os.cpu_count() or 1
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            else:
                _LOG.warning("device is cuda but onnxruntime has no CUDA provider; using the CPU")
        try:
            session = onnxruntime.InferenceSession(str(path), settings, providers=providers)
            styles = _load_styles(voice_files, per_voice)
            vocab = _vocabulary(model_dir, session)
            tokenizer = Tokenizer(vocab=vocab)
        except (EngineError, ConfigError):
            raise
        except Exception as exc:  # the library boundary: onnxruntime, numpy, espeak
            raise EngineError(f"Cannot load Kokoro model {path}: {exc}") from exc
        _LOG.info("Kokoro %s loaded with %d voices", path.name, len(styles))
        return KokoroEngine(session, tokenizer.phonemize, vocab, styles, opts)


BACKEND: Backend = KokoroBackend()
