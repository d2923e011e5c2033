"""Kokoro-82M through ONNX Runtime, with ``kokoro-onnx``'s espeak phonemizer (extra ``kokoro``).

Model directories: a bundle, ``*.onnx`` (``kokoro-v1.0.int8.onnx``) with a voices ``*.npz``
or ``voices*.bin`` (npz of (510, 1, 256) float32), or the hub layout of
``onnx-community/Kokoro-82M-v1.0-ONNX``: ``onnx/model*.onnx`` with ``voices/*.bin`` (raw
float32 LE). Model files are variants (``fp32`` = ``model.onnx``, ``quantized`` =
``model_quantized.onnx``, or a stem); int8 is preferred on the CPU, fp32 on CUDA, unless
option ``variant`` says. Models taking ``tokens`` or ``input_ids`` both work.

Voice ids are the names in the bundle or the file stems. A name's first letter gives
its language (a = en-US, b = en-GB, e = es, f = fr-FR, h = hi, i = it, j = ja, p = pt-BR,
z = Mandarin), the second its gender (f/m). Text is phonemized with espeak-ng (bundled
with kokoro-onnx), which serves every language but Japanese and Mandarin: Kokoro learnt
those from misaki's phonemes, which Bragi does not ship. So a ``j`` or ``z`` voice
speaks English (en-us) with its accent unless the ``language`` option or a request says
otherwise; a request for ``ja`` or ``zh`` is refused. Voices are listed with the
language they actually speak.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
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
from bragi.backends.support import installed
from bragi.devices import usable_cpus
from bragi.errors import ConfigError, EngineError, InvalidRequestError, UnknownVoiceError
from bragi.errors import UnsupportedCapabilityError as UnsupportedError

if TYPE_CHECKING:
    import onnxruntime
    from kokoro_onnx.tokenizer import Tokenizer

__all__ = ["BACKEND", "SAMPLE_RATE", "KokoroBackend", "KokoroEngine", "KokoroOptions"]

SAMPLE_RATE = 24_000
_LOG = logging.getLogger(__name__)
_MAX_TOKENS = 510  # the model's context, less the two padding tokens
#: voice-name prefix -> espeak code, for the languages Kokoro speaks through espeak
_VOICE_PREFIX = dict(
    zip("abefhip", ("en-us", "en-gb", "es", "fr-fr", "hi", "it", "pt-br"), strict=True)
)
#: espeak code -> BCP 47 tag ("en-us" -> "en-US")
_LANGUAGES = {code: code[:2] + code[2:].upper() for code in _VOICE_PREFIX.values()}
_TAGS = frozenset(_LANGUAGES.values())
_GENDERS: dict[str, Literal["female", "male"]] = {"f": "female", "m": "male"}
_QUANTIZED = {"quantized", "int8", "uint8"}
_REDUCED = {"fp16", "q4", "q4f16", "q8f16", "uint8f16", "bnb4"}


def espeak_language(tag: str) -> str | None:
    """The espeak code Kokoro uses for a language tag (``en``, ``en-GB``, ``pt_BR``), if any."""
    code = tag.strip().lower().replace("_", "-")
    primary = code.split("-")[0]
    return code if code in _LANGUAGES else next((c for c in _LANGUAGES if c[:2] == primary), None)


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

    capabilities = TtsCapabilities(sample_rate=SAMPLE_RATE, languages=_TAGS, max_native_speed=2.0)

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        tokenizer: Tokenizer,
        styles: dict[str, Samples],
        options: KokoroOptions,
    ) -> None:
        inputs = {i.name: i.type for i in session.get_inputs()}
        token_input = next((n for n in ("input_ids", "tokens") if n in inputs), None)
        if token_input is None or not {"style", "speed"} <= inputs.keys():
            raise EngineError(f"Not a Kokoro model: its inputs are {sorted(inputs)}")
        self._session = session
        self._token_input = token_input
        self._tokenizer = tokenizer
        self._vocab: dict[str, int] = tokenizer.vocab
        self._styles = styles
        self._options = options
        self._defaults = _default_languages(styles, options)

    def voices(self) -> Sequence[Voice]:
        return _voices(self._defaults)

    def synthesize(self, request: SynthesisRequest) -> Iterator[Audio]:
        """Check the request now, then synthesize lazily, one piece of text at a time."""
        if request.voice not in self._styles:
            raise UnknownVoiceError(
                f"Voice {request.voice!r} does not exist; "
                f"available voices: {', '.join(self._defaults)}",
                param="voice",
            )
        language = request.language and espeak_language(request.language)
        if request.language and not language:
            raise UnsupportedError(
                f"Kokoro cannot speak {request.language!r} here; it speaks "
                f"{', '.join(_LANGUAGES.values())} (Japanese and Mandarin need misaki)",
                param="language",
            )
        if not request.speed > 0:  # refuses NaN too
            raise InvalidRequestError("speed must be a positive number", param="speed")
        pieces = split_sentences(request.text)
        if not pieces:
            raise InvalidRequestError("input has no text to speak", param="input")
        style, language = self._styles[request.voice], language or self._defaults[request.voice]
        return self._generate(pieces, style, language, request.speed)

    def _generate(
        self, texts: list[str], style: Samples, lang: str, speed: float
    ) -> Iterator[Audio]:
        from kokoro_onnx.trim import trim

        gap = np.zeros(round(self._options.sentence_pause / speed * SAMPLE_RATE), np.float32)
        first = True
        for text in texts:
            for raw in self._speak(text, style, lang, speed):
                samples = np.asarray(trim(raw)[0], dtype=np.float32)
                if samples.size:
                    yield Audio(samples if first else np.concatenate([gap, samples]), SAMPLE_RATE)
                    first = False

    def _speak(self, text: str, style: Samples, language: str, speed: float) -> list[Samples]:
        """Raw audio for ``text``, halving the text until each part fits the context."""
        try:
            phonemes: str = self._tokenizer.phonemize(text, language)
        except Exception as exc:  # the library boundary: espeak, phonemizer
            raise EngineError(f"Kokoro could not phonemize {text[:40]!r}: {exc}") from exc
        tokens = [self._vocab[p] for p in phonemes if p in self._vocab]
        if len(tokens) > _MAX_TOKENS and len(text) > 1:
            halves = split_sentences(text, max_chars=len(text) // 2, first_max_chars=len(text))
            return [audio for half in halves for audio in self._speak(half, style, language, speed)]
        return [self._infer(tokens[:_MAX_TOKENS], style, speed)] if tokens else []

    def _infer(self, tokens: list[int], style: Samples, speed: float) -> Samples:
        try:
            inputs = {
                self._token_input: np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": style[min(len(tokens), len(style)) - 1],  # (1, 256), for this length
                "speed": np.array([speed], np.float32),
            }
            outputs = self._session.run(None, inputs)
        except Exception as exc:  # the library boundary: onnxruntime (or an empty voice)
            raise EngineError(f"Kokoro inference failed: {exc}") from exc
        return np.asarray(outputs[0], dtype=np.float32).reshape(-1)

    def close(self) -> None:
        self._styles.clear()


def _default_languages(names: Iterable[str], options: KokoroOptions) -> dict[str, str]:
    """Each voice's espeak language: the option's, else its prefix's, else (j, z) en-us."""
    forced = espeak_language(options.language) if options.language else None
    return {name: forced or _VOICE_PREFIX.get(name[:1], "en-us") for name in sorted(names)}


def _voices(languages: dict[str, str]) -> list[Voice]:
    return [Voice(n, _LANGUAGES[code], _GENDERS.get(n[1:2])) for n, code in languages.items()]


def _layout(model_dir: Path) -> tuple[list[Path], list[Path], bool] | None:
    """(models, voice files, one file per voice?); names only (cheap); Piper has .onnx.json."""
    if not model_dir.is_dir() or any(model_dir.glob("*.onnx.json")):
        return None
    hub = sorted(model_dir.glob("onnx/model*.onnx")), sorted(model_dir.glob("voices/*.bin"))
    if all(hub):
        return *hub, True
    models = sorted(model_dir.glob("*.onnx"))
    bundles = sorted({*model_dir.glob("*.npz"), *model_dir.glob("voices*.bin")})
    return (models, bundles, False) if models and bundles else None


def _variant(path: Path) -> str:
    """``fp32`` for ``model.onnx``, ``quantized`` for ``model_quantized.onnx``, else the stem."""
    return "fp32" if path.stem == "model" else path.stem.removeprefix("model_")


def _pick_model(models: list[Path], variant: str | None, device: Device) -> Path:
    if variant is not None:
        for path in models:
            if variant in (_variant(path), path.name, path.stem):
                return path
        known = ", ".join(_variant(p) for p in models)
        raise ConfigError(f"Kokoro has no variant {variant!r}; this model has: {known}")

    def rank(path: Path) -> tuple[tuple[bool, bool], str]:
        marks = set(re.split(r"[._-]", path.stem.lower()))
        int8, reduced = bool(marks & _QUANTIZED), bool(marks & _REDUCED)  # else fp32
        return ((int8, reduced) if device == "cuda" else (reduced, not int8)), path.name

    return min(models, key=rank)


def _load_styles(files: list[Path], per_voice: bool) -> dict[str, Samples]:
    """Each voice's style vectors, (n, 1, 256): row i is for i + 1 tokens."""
    raw: dict[str, Samples] = {}
    for path in files:
        if per_voice:
            raw[path.stem] = np.fromfile(path, dtype="<f4")
        else:
            with np.load(path, allow_pickle=False) as bundle:
                raw.update({name: np.asarray(bundle[name], np.float32) for name in bundle.files})
    return {name: style.reshape(-1, 1, 256) for name, style in raw.items()}


def _vocabulary(session: onnxruntime.InferenceSession) -> dict[str, int]:
    """The vocabulary a kokoro-onnx export keeps in its metadata; empty: kokoro-onnx's own."""
    embedded = session.get_modelmeta().custom_metadata_map.get("kokoro_config")
    vocab = json.loads(embedded).get("vocab") if embedded else None
    return {str(k): int(v) for k, v in vocab.items()} if isinstance(vocab, dict) else {}


def _options(options: BackendOptions | None) -> KokoroOptions:
    return KokoroOptions.model_validate(options.model_dump() if options else {})


class KokoroBackend:
    """Recognises and loads Kokoro ONNX models with their voices."""

    name: str = "kokoro"
    kind: ModelKind = ModelKind.TTS
    extra: str = "kokoro"
    options_model: type[BackendOptions] = KokoroOptions

    def is_available(self) -> bool:
        return installed("kokoro_onnx", "onnxruntime")

    def detect(self, model_dir: Path) -> bool:
        return _layout(model_dir) is not None

    def voices_in(self, model_dir: Path, options: BackendOptions | None) -> Sequence[Voice]:
        """The voices of a model on disk, without loading it."""
        _, files, per_voice = _layout(model_dir) or ([], [], True)
        names = [p.stem for p in files] if per_voice else [n for p in files for n in np.load(p)]
        return _voices(_default_languages(names, _options(options)))

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> KokoroEngine:
        import onnxruntime
        from kokoro_onnx.tokenizer import Tokenizer

        opts = _options(options)
        layout = _layout(model_dir)
        if layout is None:
            raise EngineError(f"No Kokoro model (an .onnx model and its voices) in {model_dir}")
        path = _pick_model(layout[0], opts.variant, device)
        settings = onnxruntime.SessionOptions()
        settings.intra_op_num_threads = opts.threads or usable_cpus()
        providers = ["CPUExecutionProvider"]
        if device == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        elif device == "cuda":
            _LOG.warning("device is cuda but onnxruntime has no CUDA provider; using the CPU")
        try:
            session = onnxruntime.InferenceSession(str(path), settings, providers=providers)
            styles = _load_styles(*layout[1:])  # a bad size fails the reshape
            tokenizer = Tokenizer(vocab=_vocabulary(session))
        except Exception as exc:  # the library boundary: onnxruntime, numpy, espeak
            raise EngineError(f"Cannot load Kokoro model {path}: {exc}") from exc
        return KokoroEngine(session, tokenizer, styles, opts)


BACKEND: Backend = KokoroBackend()
