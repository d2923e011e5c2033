"""faster-whisper: Whisper on CTranslate2, Bragi's default speech-to-text engine.

The library is imported inside :meth:`FasterWhisperBackend.load` only, so importing this
module (to list backends, to validate configuration) never pulls in faster-whisper or
CTranslate2. Segments are converted lazily, one by one, as faster-whisper decodes them.
One engine may be used from several threads at once: CTranslate2 runs up to
``num_workers`` decodes in parallel on one copy of the weights. Audio longer than one
30 s window is decoded in batches (:mod:`bragi.backends.whisper_batched`).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bragi.audio.types import Audio
from bragi.backends.checks import check_transcription
from bragi.backends.clip_batcher import ClipBatcher, Job
from bragi.backends.protocol import (
    BackendOptions,
    Device,
    ModelKind,
    Segment,
    SttCapabilities,
    TranscribeOptions,
    TranscriptionInfo,
    VadRequest,
    Word,
)
from bragi.backends.support import installed, options_as
from bragi.backends.whisper_batched import batched_segments, decode_clips, shifted
from bragi.devices import usable_cpus
from bragi.errors import (
    EngineError,
    ModelUnavailableError,
)

__all__ = [
    "BACKEND",
    "FasterWhisperBackend",
    "FasterWhisperEngine",
    "FasterWhisperOptions",
    "VadParameters",
]

SAMPLE_RATE = 16_000
#: What faster-whisper (and OpenAI's temperature 0) does: start greedy, raise on failure.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: Keys only a CTranslate2 Whisper conversion writes into its config.json.
_WHISPER_CONFIG_KEYS = frozenset({"lang_ids", "alignment_heads", "suppress_ids"})
_MAX_CONFIG_BYTES = 1 << 20
_CLIP_SECONDS = 30.0  # one window: what the clip batcher takes
_FALLBACK_PAD = 0.2  # seconds of audio kept around a chunk decoded again
#: what a job of the clip batcher gives back: faster-whisper's segments, and the info
_Decoded = tuple[list[Any], TranscriptionInfo]

# fmt: off
ComputeType = Literal["auto", "default", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
                      "int16", "float16", "bfloat16", "float32"]
# fmt: on


class VadParameters(BaseModel):
    """Silero VAD settings (faster-whisper's ``VadOptions``); unset keys keep its defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    threshold: float | None = Field(default=None, ge=0, le=1)
    """Speech probability above which a frame counts as speech."""
    neg_threshold: float | None = Field(default=None, ge=0, le=1)
    """Probability below which speech ends (default: threshold - 0.15)."""
    min_speech_duration_ms: int | None = Field(default=None, ge=0)
    """Speech shorter than this is dropped."""
    max_speech_duration_s: float | None = Field(default=None, gt=0)
    """Speech longer than this is split."""
    min_silence_duration_ms: int | None = Field(default=None, ge=0)
    """Silence needed to end a stretch of speech."""
    speech_pad_ms: int | None = Field(default=None, ge=0)
    """Padding kept on each side of a stretch of speech."""


class FasterWhisperOptions(BackendOptions):
    """The ``options:`` of a faster-whisper model in the configuration."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    compute_type: ComputeType = "auto"
    """CTranslate2 compute type; "auto" is int8 on CPU and float16 on CUDA."""
    cpu_threads: int = Field(default=0, ge=0)
    """Threads per decode on CPU; 0 means one per CPU core this process may use."""
    num_workers: int = Field(default=1, ge=1)
    """Transcriptions one loaded model runs in parallel (more workers, more memory)."""
    device_index: int = Field(default=0, ge=0)
    """Which GPU, when the device is cuda."""
    beam_size: int = Field(default=5, ge=1)
    """Beam width of the decoder; 1 is greedy and fastest."""
    vad_filter: bool = False
    """Drop non-speech with the Silero VAD before decoding."""
    vad_parameters: VadParameters | None = None
    """Silero VAD settings, used when the VAD runs."""
    batch_size: int = Field(default=8, ge=0)
    """Audio longer than ``batch_above_seconds`` is cut at pauses (Silero VAD) into chunks
    of up to 28 s, decoded this many at once (faster-whisper's BatchedInferencePipeline: a
    177 s recording in 0.72 of the time on 2 CPU cores, docs/benchmarks.md P11); 0 turns
    batching off, so every recording is decoded 30 s window after window."""
    batch_above_seconds: float = Field(default=30.0, ge=0)
    """Shorter audio keeps the plain decoder: one 30 s window gains nothing from batching."""
    batch_requests: Literal["auto", "on", "off"] = "auto"
    """Decode the short clips (30 s or less) of requests that arrive together as one batch
    of up to ``batch_size``, when they name their language (or the model is English-only);
    a lone request still runs at once. auto: on CUDA only, since on CPU a batch costs as
    much or more per request (docs/benchmarks.md, P2). Raise ``max_concurrency`` with it:
    only requests admitted at once can share a batch."""


class FasterWhisperEngine:
    """A loaded Whisper model; implements :class:`~bragi.backends.protocol.SpeechToText`."""

    def __init__(
        self, model: Any, capabilities: SttCapabilities, options: FasterWhisperOptions, batched: Any
    ) -> None:
        self._model: Any = model
        self._options = options
        self._batched: Any = batched  # faster_whisper.BatchedInferencePipeline
        self._tokenizer: Any = model.hf_tokenizer
        self.capabilities = capabilities
        #: short clips of concurrent requests, decoded together (None: each on its own)
        self.clip_batcher: ClipBatcher[_Decoded] | None = None

    def transcribe(
        self, audio: Audio, options: TranscribeOptions
    ) -> tuple[Generator[Segment, None, None], TranscriptionInfo]:
        """Check the request, then start decoding; segments come as the iterator is read."""
        language = self._check(options)
        model = self._model
        if model is None:
            raise EngineError("this faster-whisper engine has been closed")
        if audio.sample_rate != SAMPLE_RATE:
            raise EngineError(
                f"faster-whisper needs {SAMPLE_RATE} Hz audio, got {audio.sample_rate}"
            )
        opts = self._options
        vad = opts.vad_parameters.model_dump(exclude_none=True) if opts.vad_parameters else None
        if options.languages and language is None:
            language = self._likeliest(model, audio, options.languages)
        kwargs: dict[str, Any] = {
            "language": language,
            "task": options.task,
            "initial_prompt": options.prompt or None,
            "temperature": _temperatures(options.temperature),
            "word_timestamps": options.word_timestamps or options.logprobs,
            "beam_size": opts.beam_size,
            "vad_filter": opts.vad_filter,
            "vad_parameters": vad,
        }
        if options.hotwords:
            kwargs["hotwords"] = " ".join(options.hotwords)
        if options.vad is not None:  # the request's chunking_strategy=server_vad
            kwargs["vad_filter"] = True
            kwargs["vad_parameters"] = (vad or {}) | _request_vad(options.vad)
        batcher = self.clip_batcher
        spoken = self.capabilities.languages or frozenset()
        known = language or (next(iter(spoken)) if len(spoken) == 1 else None)
        if batcher is not None and audio.duration <= _CLIP_SECONDS and known is not None:
            kwargs["language"] = known
            key = (options, known)
            try:
                segments, info = batcher.run(key, (audio.samples, kwargs, options))
            except Exception as exc:
                raise EngineError(f"faster-whisper failed while decoding: {exc}") from exc
            return _segments(segments, info.duration), info
        try:
            if self.batches(audio.duration):
                pipeline = self._batched(model)  # per call: it keeps per-run state

                # the pipeline decoded at the first temperature: the fallback goes on
                again = kwargs | {"temperature": kwargs["temperature"][1:]}

                def redecode(start: float, end: float) -> Iterable[Any]:
                    return _plain_part(model, audio, start, end, again)

                raw_segments, info = batched_segments(
                    pipeline,
                    audio.samples,
                    kwargs,
                    opts.batch_size,
                    options,
                    self._encode,
                    redecode,
                )
            else:
                raw_segments, info = model.transcribe(audio.samples, **kwargs)
        except Exception as exc:
            raise EngineError(f"faster-whisper failed to start decoding: {exc}") from exc
        result = TranscriptionInfo(
            language=str(info.language),
            duration=float(info.duration),
            language_probability=float(info.language_probability),
        )
        return _segments(raw_segments, result.duration), result

    def _decode_jobs(self, jobs: Sequence[Job[_Decoded]]) -> None:
        """A batch of the clip batcher: one job alone as without it, several as one batch."""
        model = self._model
        if model is None:
            raise EngineError("this faster-whisper engine has been closed")
        samples, kwargs, options = jobs[0].payload
        if len(jobs) == 1:
            raw, _info = model.transcribe(samples, **kwargs)
            per_clip = [list(raw)]
        else:
            clips = [job.payload[0] for job in jobs]
            pipeline = self._batched(model)
            per_clip = decode_clips(pipeline, clips, kwargs, options, self._encode)
        for job, segments in zip(jobs, per_clip, strict=True):
            duration = len(job.payload[0]) / SAMPLE_RATE
            job.result = (segments, TranscriptionInfo(kwargs["language"], duration, 1.0))

    def batches(self, seconds: float) -> bool:
        """Whether audio this long goes through the batched pipeline."""
        opts = self._options
        return opts.batch_size > 0 and seconds > opts.batch_above_seconds

    def _encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens), as Whisper's segments carry them."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def close(self) -> None:
        """Drop the model so its memory goes back (after any decode still running ends)."""
        self._model = None
        gc.collect()

    def _likeliest(self, model: Any, audio: Audio, candidates: tuple[str, ...]) -> str:
        """The most probable of the request's candidate languages (``languages[]``)."""
        try:
            _best, _probability, ranked = model.detect_language(audio.samples)
        except Exception as exc:
            raise EngineError(f"faster-whisper failed to detect the language: {exc}") from exc
        scores = dict(ranked or [])
        return max(candidates, key=lambda code: scores.get(code, 0.0))

    def _check(self, options: TranscribeOptions) -> str | None:
        """Refuse, before any decoding, what this model cannot do; return the language code."""
        return check_transcription(options, self.capabilities, "This Whisper model")


class FasterWhisperBackend:
    """The faster-whisper adapter; registered as the ``faster-whisper`` entry point."""

    name = "faster-whisper"
    kind = ModelKind.STT
    extra = "faster-whisper"
    options_model: type[BackendOptions] = FasterWhisperOptions

    def is_available(self) -> bool:
        return installed("faster_whisper")

    def detect(self, model_dir: Path) -> bool:
        """A CTranslate2 Whisper conversion: model.bin, a Whisper config.json, a vocabulary."""
        try:
            if not (model_dir / "model.bin").is_file():
                return False
            with (model_dir / "config.json").open("rb") as file:  # missing: OSError, caught
                config = json.loads(file.read(_MAX_CONFIG_BYTES))  # too big: cut short, ValueError
            if not isinstance(config, dict) or not _WHISPER_CONFIG_KEYS & config.keys():
                return False
            return (model_dir / "tokenizer.json").is_file() or any(
                path.is_file() for path in model_dir.glob("vocabulary.*")
            )
        except (OSError, ValueError, RecursionError):
            return False

    def word_timestamps_in(
        self, model_dir: Path | None, device: Device, options: BackendOptions | None
    ) -> bool:
        """Every Whisper model times its words (cross-attention alignment)."""
        return True

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> FasterWhisperEngine:
        opts = options_as(FasterWhisperOptions, options)
        import faster_whisper
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        if not model_dir.is_dir():
            raise ModelUnavailableError(f"faster-whisper model directory not found: {model_dir}")
        compute_type = opts.compute_type
        if compute_type == "auto":
            compute_type = "int8" if device == "cpu" else "float16"
        try:
            model = faster_whisper.WhisperModel(
                str(model_dir),
                device=device,
                device_index=opts.device_index,
                compute_type=compute_type,
                cpu_threads=opts.cpu_threads or usable_cpus(),
                num_workers=opts.num_workers,
                local_files_only=True,
            )
        except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError; tokenizers its own
            raise ModelUnavailableError(
                f"faster-whisper could not load {model_dir} on {device} ({compute_type}): {exc}"
            ) from exc
        multilingual = bool(model.model.is_multilingual)
        languages = frozenset({"en"})
        if multilingual:  # the languages this checkpoint has tokens for: base 99, large-v3 100
            token_id = model.hf_tokenizer.token_to_id
            languages = frozenset(c for c in _LANGUAGE_CODES if token_id(f"<|{c}|>") is not None)
        caps = SttCapabilities(
            SAMPLE_RATE,
            languages,
            translate=multilingual,
            word_timestamps=True,
            hotwords=True,
            logprobs=True,
            vad=True,
        )
        engine = FasterWhisperEngine(model, caps, opts, faster_whisper.BatchedInferencePipeline)
        wanted = opts.batch_requests
        if (wanted == "on" or (wanted == "auto" and device == "cuda")) and opts.batch_size > 1:
            engine.clip_batcher = ClipBatcher(engine._decode_jobs, opts.batch_size)
        return engine


def _plain_part(
    model: Any, audio: Audio, start: float, end: float, kwargs: dict[str, Any]
) -> Iterable[Any]:
    """The plain decoder (with the rest of the temperature fallback) on [start, end)
    seconds and a little around them; the segments' times moved into the recording."""
    first = max(0, round((start - _FALLBACK_PAD) * SAMPLE_RATE))
    last = min(len(audio.samples), round((end + _FALLBACK_PAD) * SAMPLE_RATE))
    segments, _info = model.transcribe(audio.samples[first:last], **kwargs)
    return (shifted(segment, first / SAMPLE_RATE) for segment in segments)


def _request_vad(vad: VadRequest) -> dict[str, Any]:
    """OpenAI's server_vad settings as Silero VAD parameters."""
    mapped = {
        "threshold": vad.threshold,
        "min_silence_duration_ms": vad.silence_ms,
        "speech_pad_ms": vad.padding_ms,
    }
    return {key: value for key, value in mapped.items() if value is not None}


def _temperatures(temperature: float) -> tuple[float, ...]:
    """OpenAI semantics: 0 means "start at 0, raise it while decoding fails"."""
    return FALLBACK_TEMPERATURES if temperature == 0 else (temperature,)


def _segments(raw: Iterable[Any], duration: float) -> Generator[Segment, None, None]:
    """Convert faster-whisper's lazy segments; ids from 0, times clamped to the audio."""
    iterator = iter(raw)
    index = 0
    while True:
        try:
            seg = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise EngineError(f"faster-whisper failed while decoding: {exc}") from exc
        yield _segment(index, seg, duration)
        index += 1


def _segment(index: int, seg: Any, duration: float) -> Segment:
    words = None
    if seg.words is not None:
        d = duration
        words = tuple(
            Word(str(w.word), _clamp(w.start, d), _clamp(w.end, d), float(w.probability))
            for w in seg.words
        )
    return Segment(
        id=index,
        seek=int(seg.seek),
        start=_clamp(seg.start, duration),
        end=_clamp(seg.end, duration),
        text=str(seg.text),
        tokens=tuple(int(t) for t in seg.tokens),
        temperature=float(seg.temperature or 0.0),
        avg_logprob=float(seg.avg_logprob),
        compression_ratio=float(seg.compression_ratio),
        no_speech_prob=float(seg.no_speech_prob),
        words=words,
    )


def _clamp(seconds: Any, duration: float) -> float:
    return min(max(float(seconds), 0.0), duration)


BACKEND = FasterWhisperBackend()
