"""The "direct engine" side: the engine libraries called as a user would (in a worker
process, :mod:`bench.worker`).

Same model files as the server (the starter set, assembled from its PyPI packages by
:func:`bragi.models.packaged.materialize`) and the same settings the server's backends
use: faster-whisper int8 on the CPU, ``cpu_threads`` = usable cores, beam 5; Piper's
default ONNX Runtime session; Kokoro with ``intra_op_num_threads`` = ``os.cpu_count()``.
Bragi's own backend classes are not used here. P9's four engines are in
:mod:`bench.direct_stt`.
"""

from __future__ import annotations

import io
import os
import wave
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bench.direct_stt import SttEngines
from bench.machine import usable_cpus
from bench.packaged import materialize_all

__all__ = ["STARTER", "VOICES", "DirectEngines", "materialize_starter"]

#: catalog name of each starter model (src/bragi/models/starter.py)
STARTER = {
    "whisper": "whisper-base",
    "whisper-tiny.en": "whisper-tiny.en",
    "piper": "piper:en_US-joe-medium",
    "kokoro": "kokoro-int8-ja",
}
#: faster-whisper's (and Bragi's) fallback temperatures for OpenAI's temperature 0
TEMPERATURES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
KOKORO_LANGUAGE = "en-us"  # the starter's option: the Japanese voices speak English
#: the engine voice each direct call uses; also the server's default voice
VOICES = {"piper": "en_US-joe-medium", "kokoro": "jf_alpha"}


def materialize_starter(models_dir: Path) -> dict[str, Path]:
    """Assemble (once; later runs only stat) every starter model under ``models_dir``."""
    return materialize_all(STARTER, models_dir)


class DirectEngines(SttEngines):
    """The engine libraries, loaded on first use."""

    def __init__(self, dirs: dict[str, Path], models_dir: Path) -> None:
        self.dirs = dirs
        self.models_dir = models_dir  # P9's models are found there on first use
        self.threads = usable_cpus()

    # --- faster-whisper -----------------------------------------------------

    @cached_property
    def whisper(self) -> Any:
        from faster_whisper import WhisperModel

        return WhisperModel(
            str(self.dirs["whisper"]),
            device="cpu",
            compute_type="int8",
            cpu_threads=self.threads,
            num_workers=1,
            local_files_only=True,
        )

    def transcribe(self, path: Path | str, *, words: bool = False) -> str:
        """Decode the file (faster-whisper does it) and read every segment; the text."""
        segments, _info = self.whisper.transcribe(
            str(path),
            language=None,
            task="transcribe",
            beam_size=5,
            temperature=TEMPERATURES,
            word_timestamps=words,
            vad_filter=False,
        )
        pieces = []
        for segment in segments:
            pieces.append(segment.text)
            if words:
                _ = [(w.word, w.start, w.end, w.probability) for w in segment.words or ()]
        return "".join(pieces).strip()

    # --- Piper -------------------------------------------------------------------

    @cached_property
    def piper(self) -> Any:
        from piper import PiperVoice

        model = next(self.dirs["piper"].glob("*.onnx"))
        return PiperVoice.load(model, model.with_name(model.name + ".json"), use_cuda=False)

    def piper_samples(self, text: str) -> int:
        """Synthesize ``text``; the number of samples made."""
        return sum(len(chunk.audio_float_array) for chunk in self.piper.synthesize(text))

    def piper_wav(self, text: str) -> float:
        """Synthesize ``text`` into a WAV file in memory (the library's own writer); seconds."""
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav_file:
            self.piper.synthesize_wav(text, wav_file)
            frames, rate = wav_file.getnframes(), wav_file.getframerate()
        return frames / rate

    # --- Kokoro ------------------------------------------------------------------

    @cached_property
    def kokoro(self) -> Any:
        import onnxruntime
        from kokoro_onnx import Kokoro

        model_dir = self.dirs["kokoro"]
        settings = onnxruntime.SessionOptions()
        settings.intra_op_num_threads = os.cpu_count() or 1  # what Bragi's backend sets
        session = onnxruntime.InferenceSession(
            str(next(model_dir.glob("*.onnx"))), settings, providers=["CPUExecutionProvider"]
        )
        return Kokoro.from_session(session, str(next(model_dir.glob("*.npz"))))

    def kokoro_samples(self, text: str) -> int:
        samples, _rate = self.kokoro.create(text, voice=VOICES["kokoro"], lang=KOKORO_LANGUAGE)
        return len(samples)

    def kokoro_wav(self, text: str) -> float:
        """Synthesize ``text`` and write it as 16-bit WAV in memory; seconds of audio."""
        samples, rate = self.kokoro.create(text, voice=VOICES["kokoro"], lang=KOKORO_LANGUAGE)
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
        with wave.open(io.BytesIO(), "wb") as wav_file:
            wav_file.setnchannels(1)
            wav_file.setsampwidth(2)
            wav_file.setframerate(rate)
            wav_file.writeframes(pcm.tobytes())
        return len(pcm) / float(rate)
