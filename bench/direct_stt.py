"""P9's direct side: Moonshine, Vosk, Paraformer and Parakeet through their own libraries.

Each engine is called as its own documentation shows, on the file path, the library
reading (and resampling) the audio itself, with the thread counts Bragi's backends use.
No Bragi code runs here. What "direct" is, engine by engine, is :data:`DIRECT`.
"""

from __future__ import annotations

import json
import wave
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bench.stt_models import stt_model_dirs

__all__ = ["DIRECT", "SttEngines"]

#: what the direct call is, for the table's notes
DIRECT = {
    "moonshine": "moonshine-voice Transcriber(TINY).transcribe_without_streaming, its own "
    "runtime and VAD on the same .ort files (Bragi: its own greedy decoder on onnxruntime, "
    "Silero VAD)",
    "vosk": "vosk.KaldiRecognizer, SetWords, 4000-frame reads",
    "paraformer": "sherpa_onnx.OfflineRecognizer.from_paraformer, whole file in one stream",
    "parakeet": "onnx_asr.load_model('nemo-conformer-tdt').recognize(path)",
}
_VOSK_FRAMES = 4000  # Vosk's own examples read this many frames at a time


class SttEngines:
    """The four libraries, each loaded on first use (mixed into DirectEngines)."""

    models_dir: Path
    threads: int

    @cached_property
    def stt_dirs(self) -> dict[str, Path]:
        return stt_model_dirs(self.models_dir)

    # --- Moonshine (moonshine-voice) ------------------------------------------------

    @cached_property
    def moonshine(self) -> Any:
        from moonshine_voice import ModelArch
        from moonshine_voice.transcriber import Transcriber

        return Transcriber(str(self.stt_dirs["moonshine"]), model_arch=ModelArch.TINY)

    def moonshine_transcribe(self, path: Path | str) -> str:
        from moonshine_voice import load_wav_file

        samples, rate = load_wav_file(path)
        transcript = self.moonshine.transcribe_without_streaming(samples, rate)
        return " ".join(line.text.strip() for line in transcript.lines)

    # --- Vosk -----------------------------------------------------------------------

    @cached_property
    def vosk(self) -> Any:
        import vosk

        vosk.SetLogLevel(-1)
        return vosk.Model(str(self.stt_dirs["vosk"]))

    def vosk_transcribe(self, path: Path | str) -> str:
        from vosk import KaldiRecognizer

        texts = []
        with wave.open(str(path), "rb") as wav:
            recognizer = KaldiRecognizer(self.vosk, wav.getframerate())
            recognizer.SetWords(True)  # as Bragi's backend: word times
            while data := wav.readframes(_VOSK_FRAMES):
                if recognizer.AcceptWaveform(data):
                    texts.append(json.loads(recognizer.Result())["text"])
            texts.append(json.loads(recognizer.FinalResult())["text"])
        return " ".join(text for text in texts if text)

    # --- Paraformer (sherpa-onnx) -----------------------------------------------------

    @cached_property
    def paraformer(self) -> Any:
        import sherpa_onnx

        folder = self.stt_dirs["paraformer"]
        return sherpa_onnx.OfflineRecognizer.from_paraformer(
            paraformer=str(folder / "model.onnx"),
            tokens=str(folder / "tokens.txt"),
            num_threads=self.threads,
            sample_rate=16_000,
            feature_dim=80,
            provider="cpu",
        )

    def paraformer_transcribe(self, path: Path | str) -> str:
        with wave.open(str(path), "rb") as wav:  # sherpa-onnx's examples read with wave
            rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
        samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
        stream = self.paraformer.create_stream()
        stream.accept_waveform(rate, samples)  # resampled by sherpa-onnx to 16 kHz
        self.paraformer.decode_stream(stream)
        return str(stream.result.text)

    # --- Parakeet (onnx-asr) ----------------------------------------------------------

    @cached_property
    def parakeet(self) -> Any:
        import onnx_asr
        import onnxruntime

        settings = onnxruntime.SessionOptions()
        settings.intra_op_num_threads = self.threads
        settings.inter_op_num_threads = 1
        return onnx_asr.load_model(
            "nemo-conformer-tdt",
            self.stt_dirs["parakeet"],
            sess_options=settings,
            providers=["CPUExecutionProvider"],
        )

    def parakeet_transcribe(self, path: Path | str) -> str:
        return str(self.parakeet.recognize(str(path)))  # onnx-asr reads and resamples
