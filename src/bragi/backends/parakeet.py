"""Parakeet: NVIDIA's FastConformer TDT and RNN-T models, on onnx-asr.

The model is the layout of the ONNX exports ``istupakov/parakeet-tdt-0.6b-v2-onnx`` and
``-v3-onnx``: ``encoder-model.onnx`` (weights in ``encoder-model.onnx.data``),
``decoder_joint-model.onnx``, ``vocab.txt`` and a ``config.json`` naming the model type,
optionally quantized (``encoder-model.int8.onnx`` ...). onnx-asr (pure Python on ONNX
Runtime, typed, no torch) computes the features, runs greedy TDT/RNN-T decoding and gives
each token's start time and log-probability, so segments and words have real times.
Parakeet is trained on short utterances: long audio is cut at pauses and each piece decoded
on its own. onnx-asr is imported in ``load()`` only.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from bragi.audio.types import Audio, Samples
from bragi.backends.chunked import (
    SAMPLE_RATE,
    ChunkedOptions,
    Token,
    ensure_open,
    in_batches,
    make_segment,
    plan_chunks,
    settle_language,
    usable_cpus,
)
from bragi.backends.protocol import (
    BackendOptions,
    Device,
    ModelKind,
    Segment,
    SttCapabilities,
    TranscribeOptions,
    TranscriptionInfo,
)
from bragi.backends.support import installed, options_as
from bragi.errors import EngineError, ModelUnavailableError

__all__ = ["BACKEND", "ParakeetBackend", "ParakeetEngine", "ParakeetOptions"]

#: onnx-asr model types of NeMo transducers (config.json ``model_type``).
MODEL_TYPES = frozenset({"nemo-conformer-tdt", "nemo-conformer-rnnt"})
_MAX_CONFIG_BYTES = 1 << 20
_MIN_SAMPLES = SAMPLE_RATE // 4  # the encoder needs a few frames: pad tiny chunks
_LOG = logging.getLogger(__name__)


class ParakeetOptions(ChunkedOptions):
    """The ``options:`` of a Parakeet model in the configuration."""

    quantization: str | None = None
    """Which files: None for ``encoder-model.onnx``, ``int8`` for ``encoder-model.int8.onnx``
    ...; unset, the unquantized files if present, else the one quantized set there is."""
    batch_size: int = Field(default=1, ge=1, le=64)
    """Chunks of one recording handed to onnx-asr at once (it pads them into one batch
    and decodes each to its own length); 1 decodes them one after another. 1 by default:
    with no real Parakeet weights here, whether a batch is faster could not be measured
    (docs/benchmarks.md)."""


class ParakeetEngine:
    """A loaded Parakeet model; implements :class:`~bragi.backends.protocol.SpeechToText`."""

    def __init__(
        self,
        model: Any,
        capabilities: SttCapabilities,
        options: ParakeetOptions,
        token_ids: dict[str, int],
    ) -> None:
        self._model: Any = model  # onnx_asr TimestampedResultsAsrAdapter
        self._options = options
        self._token_ids = token_ids
        self.capabilities = capabilities

    def transcribe(
        self, audio: Audio, options: TranscribeOptions
    ) -> tuple[Generator[Segment, None, None], TranscriptionInfo]:
        """Check the request, find the speech, then decode it piece by piece as it is read."""
        chunks, info = plan_chunks("Parakeet", audio, options, self.capabilities, self._options)
        ensure_open(self._model, "Parakeet")
        languages = self._options.languages or sorted(self.capabilities.languages or ()) or None
        return settle_language(self._segments(audio.samples, chunks), info, languages)

    def close(self) -> None:
        """Drop the ONNX Runtime sessions so their memory goes back."""
        self._model = None
        gc.collect()

    def _segments(
        self, samples: Samples, chunks: list[tuple[int, int]]
    ) -> Generator[Segment, None, None]:
        index = 0
        for batch in in_batches(chunks, self._options.batch_size):
            results = self._decode([samples[begin:end] for begin, end in batch])
            for segment in self._batch_segments(batch, results, index):
                yield segment
                index += 1

    def _batch_segments(
        self, batch: list[tuple[int, int]], results: list[Any], index: int
    ) -> Generator[Segment, None, None]:
        for (begin, end), result in zip(batch, results, strict=True):
            text = str(result.text).strip()
            if not text:
                continue
            start, stop = begin / SAMPLE_RATE, end / SAMPLE_RATE
            pieces = [str(t) for t in result.tokens or ()]
            times = [float(t) for t in result.timestamps or ()]
            timed = bool(pieces) and len(times) == len(pieces)
            times = times if timed else [0.0] * len(pieces)
            logprobs: list[float | None] = [float(p) for p in result.logprobs or ()]
            if len(logprobs) != len(pieces):
                logprobs = [None] * len(pieces)
            tokens = [
                # SentencePiece's "▁" (onnx-asr turns it into a space) begins a word
                Token(p, start + t, p.startswith(" "), self._token_ids.get(p), lp)
                for p, t, lp in zip(pieces, times, logprobs, strict=True)
            ]
            yield make_segment(index, start, stop, " " + text, tokens, timed)
            index += 1

    def _decode(self, clips: list[Samples]) -> list[Any]:
        """One result per clip; several clips are one batch of the library's."""
        model = self._model
        if model is None:
            raise EngineError("this Parakeet engine was closed while decoding")
        padded = [
            np.pad(c, (0, _MIN_SAMPLES - len(c))) if len(c) < _MIN_SAMPLES else c for c in clips
        ]
        try:
            if len(padded) == 1:
                return [model.recognize(padded[0], sample_rate=SAMPLE_RATE)]
            return list(model.recognize(padded, sample_rate=SAMPLE_RATE))
        except Exception as exc:  # the library boundary: onnx-asr, ONNX Runtime
            raise EngineError(f"Parakeet failed while decoding: {exc}") from exc


class ParakeetBackend:
    """The Parakeet adapter; registered as the ``parakeet`` entry point."""

    name = "parakeet"
    kind = ModelKind.STT
    extra = "parakeet"
    options_model: type[BackendOptions] = ParakeetOptions

    def is_available(self) -> bool:
        # onnx-asr declares ONNX Runtime as an extra only: both must be there
        return installed("onnx_asr", "onnxruntime")

    def detect(self, model_dir: Path) -> bool:
        """config.json naming a NeMo transducer, vocab.txt, an encoder and a decoder-joint."""
        try:
            if _model_type(model_dir) not in MODEL_TYPES:
                return False
            return (model_dir / "vocab.txt").is_file() and bool(_variants(model_dir))
        except (OSError, ValueError, RecursionError):
            return False

    def word_timestamps_in(
        self, model_dir: Path | None, device: Device, options: BackendOptions | None
    ) -> bool:
        """The transducer's frames time every token, hence every word."""
        return True

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> ParakeetEngine:
        opts = options_as(ParakeetOptions, options)
        import onnx_asr
        import onnxruntime

        try:
            model_type = _model_type(model_dir)
        except (OSError, ValueError, RecursionError) as exc:
            raise ModelUnavailableError(f"cannot read {model_dir}/config.json: {exc}") from exc
        if model_type not in MODEL_TYPES:
            raise ModelUnavailableError(
                f"{model_dir} holds a {model_type!r} model, not a Parakeet TDT or RNN-T"
            )
        quantization = _quantization(model_dir, opts.quantization)
        vocab = _read_vocab(model_dir / "vocab.txt")
        settings = onnxruntime.SessionOptions()
        settings.intra_op_num_threads = opts.threads or usable_cpus()
        settings.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        elif device == "cuda":
            _LOG.warning("device is cuda but onnxruntime has no CUDA provider; using the CPU")
        try:
            model = onnx_asr.load_model(
                model_type,
                model_dir,
                quantization=quantization,
                sess_options=settings,
                providers=providers,
            )
        except Exception as exc:  # onnx-asr's ModelLoadingError, ONNX Runtime's Fail, ...
            raise ModelUnavailableError(f"onnx-asr could not load {model_dir}: {exc}") from exc
        languages = frozenset(opts.languages) if opts.languages else _languages(vocab)
        caps = SttCapabilities(SAMPLE_RATE, languages, translate=False, word_timestamps=True)
        return ParakeetEngine(model.with_timestamps(), caps, opts, vocab)


def _model_type(model_dir: Path) -> str:
    with (model_dir / "config.json").open("rb") as file:
        config = json.loads(file.read(_MAX_CONFIG_BYTES))
    model_type = config.get("model_type") if isinstance(config, dict) else None
    return model_type if isinstance(model_type, str) else ""


def _variants(model_dir: Path) -> list[str | None]:
    """The quantizations with both files there: None for the plain export, "int8", ..."""
    found: list[str | None] = []
    for encoder in sorted(model_dir.glob("encoder-model*.onnx")):
        middle = encoder.name.removeprefix("encoder-model").removesuffix(".onnx")
        if middle and not middle.startswith("."):
            continue
        if (model_dir / f"decoder_joint-model{middle}.onnx").is_file():
            found.append(middle[1:] or None)
    return found


def _quantization(model_dir: Path, wanted: str | None) -> str | None:
    variants = _variants(model_dir)
    if not variants:
        raise ModelUnavailableError(f"no encoder-model/decoder_joint-model pair in {model_dir}")
    if wanted is not None and wanted not in variants:
        there = ", ".join(v or "unquantized" for v in variants)
        raise ModelUnavailableError(f"no {wanted} Parakeet files in {model_dir}, only {there}")
    if wanted is not None or None in variants:
        return wanted
    return variants[0]


def _read_vocab(path: Path) -> dict[str, int]:
    """vocab.txt (``token id`` per line) keyed as onnx-asr spells tokens: "▁" as a space."""
    try:
        pairs = [line.rsplit(" ", 1) for line in path.read_text("utf-8").splitlines() if line]
        vocab = {token.replace("\u2581", " "): int(i) for token, i in pairs}
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"cannot read the Parakeet vocabulary {path}: {exc}") from exc
    if "<blk>" not in vocab:
        raise ModelUnavailableError(f"{path} has no <blk> token: not a NeMo transducer vocabulary")
    return vocab


def _languages(vocab: dict[str, int]) -> frozenset[str] | None:
    """English for an ASCII-only vocabulary (v2); else not known here (v3 speaks 25)."""
    return frozenset({"en"}) if all(token.isascii() for token in vocab) else None


BACKEND = ParakeetBackend()
