"""Moonshine: Useful Sensors' small English speech-to-text models, on ONNX Runtime.

Two layouts load the same way: the ``.ort`` files of ``moonshine-voice`` with its
``tokenizer.bin``, and the hub's ONNX exports (``encoder_model.onnx`` and
``decoder_model_merged.onnx`` at the root, in ``onnx/`` or ``onnx/merged/*/*``, with
``tokenizer.json``). Decoding is greedy with the merged decoder's key/value cache, so only
onnxruntime and numpy are needed. Moonshine is trained on clips under about 20 s: the
audio is cut at pauses by the Silero VAD (:mod:`bragi.backends.vad`) and each piece is
one segment with its real start and end.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import zlib
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ConfigDict, Field

from bragi.audio.types import Audio, Samples
from bragi.backends.checks import check_transcription
from bragi.backends.protocol import (
    BackendOptions,
    Device,
    ModelKind,
    Segment,
    SttCapabilities,
    TranscribeOptions,
    TranscriptionInfo,
)
from bragi.backends.stretches import vad_options
from bragi.backends.support import installed, options_as
from bragi.backends.vad import SileroVad, VadOptions, load_silero_vad
from bragi.backends.vad import silero_model_path as _silero_model_path
from bragi.errors import (
    EngineError,
    ModelUnavailableError,
)

__all__ = ["BACKEND", "MoonshineBackend", "MoonshineEngine", "MoonshineOptions", "read_vocabulary"]

log = logging.getLogger(__name__)
SAMPLE_RATE = 16_000
ENCODER, DECODER = "encoder_model", "decoder_model_merged"
_START, _END = 1, 2  # <s> starts decoding, </s> ends it; ids 0-2 are never text
_MIN_SAMPLES = 1_600  # the encoder's convolutions need about 0.1 s
_TOKENS_PER_SECOND = 8  # a cap well above speech (~4/s) that stops a looping decoder


class MoonshineOptions(BackendOptions):
    """The ``options:`` of a Moonshine model in the configuration."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    threads: int | None = Field(default=None, ge=1)
    """ONNX Runtime intra-op threads; unset: ONNX Runtime's default (the physical cores)."""
    provider: str | None = None
    """An ONNX Runtime execution provider to use instead of the device's default
    (e.g. "OpenVINOExecutionProvider"); the CPU stays as the fallback."""
    vad: VadOptions = VadOptions()
    """How long audio is cut at pauses before decoding."""


class MoonshineEngine:
    """A loaded Moonshine model; implements :class:`~bragi.backends.protocol.SpeechToText`."""

    capabilities = SttCapabilities(SAMPLE_RATE, frozenset({"en"}), vad=True)  # its own Silero

    def __init__(
        self, encoder: Any, decoder: Any, vocabulary: list[bytes], vad: SileroVad, opts: VadOptions
    ) -> None:
        self._encoder, self._decoder = encoder, decoder  # None once closed
        self._vocabulary, self._vad, self._vad_options = vocabulary, vad, opts
        # Exports differ in whether they take attention masks; the cache shape is static.
        self._encoder_inputs = {i.name for i in encoder.get_inputs()}
        inputs = {i.name: i for i in decoder.get_inputs()}
        self._decoder_inputs = set(inputs)
        self._cache_names = [n for n in inputs if n.startswith("past_key_values.")]
        shape = inputs[self._cache_names[0]].shape if self._cache_names else [None] * 4
        heads, head_size = shape[1], shape[3]
        needed = {"input_ids", "encoder_hidden_states", "use_cache_branch"} <= inputs.keys()
        needed = needed and "input_values" in self._encoder_inputs
        if not (needed and isinstance(heads, int) and isinstance(head_size, int)):
            raise ModelUnavailableError(
                "not a Moonshine ONNX export this backend can run: encoder inputs "
                f"{sorted(self._encoder_inputs)}, decoder inputs {sorted(inputs)[:5]}..."
            )
        self._empty_cache = np.zeros((1, heads, 0, head_size), dtype=np.float32)

    def transcribe(
        self, audio: Audio, options: TranscribeOptions
    ) -> tuple[Generator[Segment, None, None], TranscriptionInfo]:
        """Check the request, then start; each segment is decoded as the iterator is read."""
        check_transcription(options, self.capabilities, "Moonshine")
        if self._decoder is None:
            raise EngineError("this Moonshine engine has been closed")
        if audio.sample_rate != SAMPLE_RATE:
            raise EngineError(f"Moonshine needs {SAMPLE_RATE} Hz audio, got {audio.sample_rate}")
        vad = self._vad_options
        if options.vad is not None:  # the request's chunking_strategy=server_vad
            vad = vad_options(options.vad, vad)
        return self._segments(audio.samples, vad), TranscriptionInfo("en", audio.duration)

    def close(self) -> None:
        """Drop the sessions so their memory goes back."""
        self._encoder = self._decoder = None
        gc.collect()

    def _segments(self, samples: Samples, vad: VadOptions) -> Generator[Segment, None, None]:
        index = 0
        for span in self._vad.spans(samples, vad):
            tokens, avg_logprob = self._generate(samples[span.start : span.end])
            text = decode_tokens(self._vocabulary, tokens).strip()
            if not text:
                continue
            yield Segment(
                id=index,
                seek=round(span.start / SAMPLE_RATE * 100),  # Whisper's unit: 10 ms frames
                start=span.start / SAMPLE_RATE,
                end=span.end / SAMPLE_RATE,
                text=" " + text,  # segments join into the transcript as Whisper's do
                tokens=tuple(tokens),
                avg_logprob=avg_logprob,
                compression_ratio=len(text.encode()) / len(zlib.compress(text.encode())),
            )
            index += 1

    def _generate(self, clip: Samples) -> tuple[list[int], float]:
        """Greedy decoding of one clip: the token ids and their mean log-probability."""
        encoder, decoder = self._encoder, self._decoder
        if encoder is None or decoder is None:
            raise EngineError("this Moonshine engine has been closed")
        if len(clip) < _MIN_SAMPLES:
            clip = np.pad(clip, (0, _MIN_SAMPLES - len(clip)))
        audio = clip[np.newaxis, :]
        mask = np.ones_like(audio, dtype=np.int64)  # over samples: the decoder downsamples it
        cache = dict.fromkeys(self._cache_names, self._empty_cache)
        tokens: list[int] = []
        logprobs: list[float] = []
        next_id = _START
        try:
            feed = {"input_values": audio, "attention_mask": mask}
            (hidden,) = encoder.run(None, _only(feed, self._encoder_inputs))
            fixed = _only(
                {"encoder_hidden_states": hidden, "encoder_attention_mask": mask},
                self._decoder_inputs,
            )
            for step in range(math.ceil(len(clip) / SAMPLE_RATE * _TOKENS_PER_SECOND) + 4):
                ids = np.array([[next_id]], dtype=np.int64)
                logits, *present = decoder.run(
                    None,
                    {"input_ids": ids, "use_cache_branch": np.array([step > 0])} | fixed | cache,
                )
                last = logits[0, -1].astype(np.float64)
                next_id = int(last.argmax())  # greedy; its log-softmax, for avg_logprob
                logprobs.append(-math.log(float(np.exp(last - last[next_id]).sum())))
                if next_id == _END:
                    break
                tokens.append(next_id)
                for name, value in zip(self._cache_names, present, strict=True):
                    # The cross-attention cache is computed once, on the first step.
                    if step == 0 or ".decoder." in name:
                        cache[name] = value
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"Moonshine failed while decoding: {exc}") from exc
        return tokens, float(np.mean(logprobs)) if logprobs else 0.0


def _only(feed: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """The inputs this export has (attention masks are optional)."""
    return {name: value for name, value in feed.items() if name in names}


def decode_tokens(vocabulary: list[bytes], tokens: list[int]) -> str:
    """SentencePiece-style decoding: the pieces' bytes joined, "▁" read as a space."""
    pieces = b"".join(vocabulary[t] for t in tokens if _END < t < len(vocabulary))
    return pieces.replace("\u2581".encode(), b" ").decode("utf-8", errors="replace")


def read_vocabulary(path: Path) -> list[bytes]:
    """Token id ─▶ bytes, from ``tokenizer.json`` or ``tokenizer.bin`` (varint-length pieces)."""
    data = path.read_bytes()
    if path.suffix == ".json":
        spec = json.loads(data)
        pairs: dict[str, int] = dict(spec["model"]["vocab"])
        added = spec.get("added_tokens", ())
        pairs |= {t["content"]: t["id"] for t in added if not t.get("special")}
        vocabulary = [b""] * (max([*pairs.values(), *(t["id"] for t in added)]) + 1)
        for piece, token in pairs.items():  # byte fallback pieces are spelled <0xNN>
            byte = len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">")
            vocabulary[token] = bytes([int(piece[3:5], 16)]) if byte else piece.encode()
        return vocabulary
    vocabulary, offset = [], 0
    while offset < len(data):
        length = shift = 0
        while data[offset] & 0x80:  # 128 bytes or more: a second length byte (base 128)
            length |= (data[offset] & 0x7F) << shift
            offset, shift = offset + 1, shift + 7
        length |= data[offset] << shift
        vocabulary.append(data[offset + 1 : offset + 1 + length])
        offset += 1 + length
    return vocabulary


def _find_files(model_dir: Path) -> tuple[Path, Path, Path] | None:
    """The encoder, the merged decoder and the tokenizer, in either layout."""
    # "float" sorts before "quantized" among the hub's onnx/merged/<size>/<precision>.
    for folder in [model_dir, model_dir / "onnx", *sorted(model_dir.glob("onnx/merged/*/*"))]:
        for suffix in (".ort", ".onnx"):
            encoder, decoder = folder / f"{ENCODER}{suffix}", folder / f"{DECODER}{suffix}"
            if not (encoder.is_file() and decoder.is_file()):
                continue
            for tokenizer in (folder / "tokenizer.bin", folder / "tokenizer.json"):
                for candidate in (tokenizer, model_dir / tokenizer.name):
                    if candidate.is_file():
                        return encoder, decoder, candidate
    return None


class MoonshineBackend:
    """The Moonshine adapter; registered as the ``moonshine`` entry point."""

    name = "moonshine"
    kind = ModelKind.STT
    extra = "moonshine"
    options_model: type[BackendOptions] = MoonshineOptions

    def is_available(self) -> bool:
        """onnxruntime and a packaged Silero VAD model (checked without importing)."""
        found = installed("onnxruntime")
        return found and _silero_model_path() is not None

    def detect(self, model_dir: Path) -> bool:
        """The file names, and no config.json of another model (Whisper's ONNX exports)."""
        try:
            if _find_files(model_dir) is None:
                return False
            with (model_dir / "config.json").open("rb") as file:
                config = json.loads(file.read(1 << 20))  # too big: cut short, ValueError
            return isinstance(config, dict) and config.get("model_type") == "moonshine"
        except FileNotFoundError:
            return True  # moonshine-voice's .ort files come without a config
        except (OSError, ValueError, RecursionError):
            return False

    def word_timestamps_in(
        self, model_dir: Path | None, device: Device, options: BackendOptions | None
    ) -> bool:
        """Moonshine gives text per stretch of speech, no word times."""
        return False

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> MoonshineEngine:
        opts = options_as(MoonshineOptions, options)
        import onnxruntime

        files = _find_files(model_dir) if model_dir.is_dir() else None
        if files is None:
            raise ModelUnavailableError(
                f"no Moonshine model in {model_dir}: need {ENCODER}.onnx|.ort, "
                f"{DECODER}.onnx|.ort and tokenizer.bin|.json"
            )
        providers = _providers(onnxruntime.get_available_providers(), device, opts.provider)
        settings = onnxruntime.SessionOptions()
        settings.intra_op_num_threads = opts.threads or 0  # 0: ONNX Runtime's choice
        try:
            encoder, decoder = (
                onnxruntime.InferenceSession(str(path), settings, providers=providers)
                for path in files[:2]
            )
            vocabulary = read_vocabulary(files[2])
        except Exception as exc:  # onnxruntime's own errors, OSError, a malformed tokenizer
            raise ModelUnavailableError(f"cannot load Moonshine from {model_dir}: {exc}") from exc
        return MoonshineEngine(encoder, decoder, vocabulary, load_silero_vad(), opts.vad)


def _providers(available: list[str], device: Device, provider: str | None) -> list[str]:
    """The configured provider (which must exist), else CUDA on cuda when there is one."""
    if provider is not None and provider not in available:
        raise ModelUnavailableError(
            f"ONNX Runtime has no {provider}; available: {', '.join(available)}"
        )
    if provider is None and device == "cuda":
        if "CUDAExecutionProvider" in available:
            provider = "CUDAExecutionProvider"
        else:  # as Kokoro and Piper do: keep serving, on the CPU
            log.warning("device is cuda but onnxruntime has no CUDA provider; using the CPU")
    return list(dict.fromkeys([provider or "CPUExecutionProvider", "CPUExecutionProvider"]))


BACKEND = MoonshineBackend()
