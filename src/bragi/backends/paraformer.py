"""Paraformer: FunASR's non-autoregressive speech recognizer, on sherpa-onnx.

The model is sherpa-onnx's layout (``model.onnx`` or ``model.int8.onnx`` plus
``tokens.txt``, e.g. ``csukuangfj/sherpa-onnx-paraformer-zh-2024-03-09``): one ONNX graph
whose metadata carries the LFR and CMVN front-end settings. sherpa-onnx is used rather than
funasr-onnx, which pins numpy below 2. Long audio is cut at pauses and each piece decoded
on its own; exports with the CIF timestamp outputs (``us_cif_peak``) give token times, so
words, and the others give segments only. sherpa-onnx is imported in ``load()`` only.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Generator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bragi.audio.types import Audio, Samples
from bragi.backends.chunked import (
    SAMPLE_RATE,
    ChunkedOptions,
    Token,
    ensure_open,
    make_segment,
    plan_chunks,
    read_onnx_header,
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

__all__ = ["BACKEND", "ParaformerBackend", "ParaformerEngine", "ParaformerOptions"]

_MODEL_FILES = ("model.int8.onnx", "model.onnx")
#: The output that times each token (exports made with timestamps have it).
_TIMESTAMPS = "us_cif_peak"
#: Keys sherpa-onnx reads from the model; it ends the process when one is missing.
_REQUIRED = ("vocab_size", "lfr_window_size", "lfr_window_shift", "neg_mean", "inv_stddev")
_FBANK_BINS = 80
_MIN_SAMPLES = SAMPLE_RATE // 2  # LFR needs 7 frames or more: pad shorter chunks with silence
_CJK = re.compile(r"[\u3400-\u9fff]")


class ParaformerOptions(ChunkedOptions):
    """The ``options:`` of a Paraformer model in the configuration."""

    provider: Literal["cpu", "cuda", "coreml"] | None = None
    """sherpa-onnx execution provider; the server's device when unset (the PyPI wheel
    is CPU-only: CUDA needs sherpa-onnx's CUDA build)."""
    quantized: bool | None = None
    """model.int8.onnx (True) or model.onnx (False); unset: int8 on CPU, fp32 on CUDA."""


class ParaformerEngine:
    """A loaded Paraformer; implements :class:`~bragi.backends.protocol.SpeechToText`."""

    def __init__(
        self,
        recognizer: Any,
        capabilities: SttCapabilities,
        options: ParaformerOptions,
        token_ids: dict[str, int],
    ) -> None:
        self._recognizer: Any = recognizer  # sherpa_onnx.OfflineRecognizer
        self._options = options
        self._token_ids = token_ids
        self.capabilities = capabilities

    def transcribe(
        self, audio: Audio, options: TranscribeOptions
    ) -> tuple[Generator[Segment, None, None], TranscriptionInfo]:
        """Check the request, find the speech, then decode it piece by piece as it is read."""
        chunks, info = plan_chunks("Paraformer", audio, options, self.capabilities, self._options)
        ensure_open(self._recognizer, "Paraformer")
        languages = self._options.languages or sorted(self.capabilities.languages or ()) or None
        return settle_language(self._segments(audio.samples, chunks), info, languages)

    def close(self) -> None:
        """Drop the recognizer so its memory goes back (after any decode still running)."""
        self._recognizer = None
        gc.collect()

    def _segments(
        self, samples: Samples, chunks: list[tuple[int, int]]
    ) -> Generator[Segment, None, None]:
        index = 0
        for begin, end in chunks:
            result = self._decode(samples[begin:end])
            start, stop = begin / SAMPLE_RATE, end / SAMPLE_RATE
            symbols = [str(s) for s in result.tokens]
            times = [float(t) for t in result.timestamps]
            timed = bool(symbols) and len(times) == len(symbols)  # sherpa drops bad alignments
            times = times if timed else [0.0] * len(symbols)
            tokens = _tokens(symbols, times, start, self._token_ids)
            # sherpa-onnx's own spelling of the text, with the leading space it strips, so
            # that segments join like Whisper's (" Latin words", "中文" without)
            text = "".join(t.text for t in tokens)
            if text.strip():
                yield make_segment(index, start, stop, text, tokens, timed)
                index += 1

    def _decode(self, samples: Samples) -> Any:
        recognizer = self._recognizer
        if recognizer is None:
            raise EngineError("this Paraformer engine was closed while decoding")
        if len(samples) < _MIN_SAMPLES:
            samples = np.pad(samples, (0, _MIN_SAMPLES - len(samples)))
        try:
            stream = recognizer.create_stream()
            stream.accept_waveform(SAMPLE_RATE, samples)
            recognizer.decode_stream(stream)
            return stream.result
        except Exception as exc:  # the library boundary: sherpa-onnx raises RuntimeError
            raise EngineError(f"Paraformer failed while decoding: {exc}") from exc


def _tokens(
    symbols: list[str], times: list[float], offset: float, ids: dict[str, int]
) -> list[Token]:
    """Tokens as sherpa-onnx spells them into the text: ``@@`` glues a BPE piece to the
    next, Latin pieces get a space before them, CJK characters are words of their own."""
    out: list[Token] = []
    glued = False
    for i, (symbol, time) in enumerate(zip(symbols, times, strict=True)):
        start = offset + time
        if symbol.endswith("@@"):
            text, new = (symbol[:-2], False) if glued else (" " + symbol[:-2], True)
            glued = True
        elif symbol[:1].isascii():
            text, new = (symbol, False) if glued else (" " + symbol, True)
            glued = False
        else:
            after_latin = i > 0 and symbols[i - 1][:1].isascii()
            text, new, glued = (" " if after_latin else "") + symbol, True, False
        out.append(Token(text, start, new, ids.get(symbol)))
    return out


class ParaformerBackend:
    """The Paraformer adapter; registered as the ``paraformer`` entry point."""

    name = "paraformer"
    kind = ModelKind.STT
    extra = "paraformer"
    options_model: type[BackendOptions] = ParaformerOptions

    def is_available(self) -> bool:
        return installed("sherpa_onnx")

    def detect(self, model_dir: Path) -> bool:
        """tokens.txt and a model whose metadata has Paraformer's front-end keys.

        Reads only the metadata (see :func:`read_onnx_header`). SenseVoice models share the
        files and most keys but say ``model_type: sense_voice_ctc``.
        """
        try:
            model = next((model_dir / n for n in _MODEL_FILES if (model_dir / n).is_file()), None)
            if model is None or not (model_dir / "tokens.txt").is_file():
                return False
            metadata = read_onnx_header(model).metadata
        except (OSError, ValueError):
            return False
        return metadata.get("model_type", "paraformer") == "paraformer" and all(
            key in metadata for key in _REQUIRED
        )

    def word_timestamps_in(
        self, model_dir: Path | None, device: Device, options: BackendOptions | None
    ) -> bool | None:
        """Whether the export ``load`` would pick has the timestamp output (its header only)."""
        if model_dir is None:
            return None  # exports with and without timestamps exist
        opts = ParaformerOptions.model_validate(options.model_dump() if options else {})
        try:
            model = _model_file(model_dir, opts.quantized, device)
            return _TIMESTAMPS in read_onnx_header(model, graph=True).outputs
        except (ModelUnavailableError, OSError, ValueError):
            return None  # loading it would fail and say why

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> ParaformerEngine:
        opts = options_as(ParaformerOptions, options)
        import sherpa_onnx

        model = _model_file(model_dir, opts.quantized, device)
        try:
            header = read_onnx_header(model, graph=True)
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(f"cannot read the Paraformer model {model}: {exc}") from exc
        _check_metadata(model, header.metadata)
        symbols = _read_tokens(model_dir / "tokens.txt", int(header.metadata["vocab_size"]))
        try:
            recognizer = sherpa_onnx.OfflineRecognizer.from_paraformer(
                paraformer=str(model),
                tokens=str(model_dir / "tokens.txt"),
                num_threads=opts.threads or usable_cpus(),
                sample_rate=SAMPLE_RATE,
                feature_dim=_FBANK_BINS,
                provider=opts.provider or device,
            )
        except Exception as exc:  # sherpa-onnx raises RuntimeError (ONNX Runtime's message)
            raise ModelUnavailableError(f"sherpa-onnx could not load {model}: {exc}") from exc
        languages = frozenset(opts.languages or _languages(symbols))
        timed = _TIMESTAMPS in header.outputs
        caps = SttCapabilities(SAMPLE_RATE, languages, translate=False, word_timestamps=timed)
        ids = {symbol: i for i, symbol in enumerate(symbols)}
        return ParaformerEngine(recognizer, caps, opts, ids)


def _model_file(model_dir: Path, quantized: bool | None, device: Device) -> Path:
    """The model file to load: as asked, else int8 on CPU (4x smaller) and fp32 on CUDA."""
    names: tuple[str, ...]
    if quantized is None:
        names = _MODEL_FILES if device == "cpu" else _MODEL_FILES[::-1]
    else:
        names = (_MODEL_FILES[0],) if quantized else (_MODEL_FILES[1],)
    for name in names:
        if (model_dir / name).is_file():
            return model_dir / name
    raise ModelUnavailableError(f"no Paraformer model ({' or '.join(names)}) in {model_dir}")


def _check_metadata(model: Path, metadata: dict[str, str]) -> None:
    """What sherpa-onnx would otherwise end the process over, or crash on, said as an error."""
    missing = [key for key in _REQUIRED if not metadata.get(key)]
    if missing:
        raise ModelUnavailableError(
            f"{model} is not a sherpa-onnx Paraformer export: its metadata lacks {missing}"
        )
    try:
        sizes = [int(metadata[key]) for key in _REQUIRED[:3]]
        cmvn = [[float(v) for v in metadata[key].split(",")] for key in _REQUIRED[3:]]
    except ValueError as exc:
        raise ModelUnavailableError(f"{model} has malformed Paraformer metadata: {exc}") from exc
    width = _FBANK_BINS * sizes[1]
    if min(sizes) <= 0 or any(len(vector) != width for vector in cmvn):
        raise ModelUnavailableError(
            f"{model} has inconsistent Paraformer metadata: sizes {sizes}, "
            f"CMVN of {[len(v) for v in cmvn]} values for {width} features"
        )


def _read_tokens(path: Path, vocab_size: int) -> list[str]:
    """tokens.txt as a list indexed by id; it must cover the model's outputs and say </s>."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        pairs = [line.rsplit(maxsplit=1) for line in lines if line.strip()]
        table = {int(i): symbol for symbol, i in pairs}
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"cannot read the Paraformer tokens {path}: {exc}") from exc
    symbols = [table.get(i, "") for i in range(max(table, default=-1) + 1)]
    if "</s>" not in table.values() or len(symbols) < vocab_size:
        raise ModelUnavailableError(
            f"{path} does not fit the model: {len(symbols)} tokens for a vocabulary of "
            f"{vocab_size}, and it must contain </s>"
        )
    return symbols


def _languages(symbols: list[str]) -> frozenset[str]:
    """Chinese and English when the vocabulary has Chinese characters, else English."""
    return frozenset({"zh", "en"}) if any(_CJK.search(s) for s in symbols) else frozenset({"en"})


BACKEND = ParaformerBackend()
