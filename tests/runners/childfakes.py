"""Scripted backends for the worker tests, loadable inside a worker process.

They are module-level objects (:data:`STT`, :data:`TTS`), so a worker started from the
server's interpreter imports them by reference. Being in another process, they are
driven by files, not :class:`threading.Event`: :class:`Script` appends what happens to
``<workdir>/events`` and waits on gate files ``<workdir>/open-<i>``, and every wait is
bounded. Trouble is asked for per request: an STT prompt ``"crash@1"``, ``"hang@1"`` or
``"fail@1"`` (at segment 1), or a TTS sentence containing ``CRASH``, ``HANG`` or ``FAIL``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from bragi.audio.types import Audio
from bragi.backends.protocol import (
    BackendOptions,
    Device,
    Engine,
    ModelKind,
    Segment,
    SttCapabilities,
    SynthesisRequest,
    TranscribeOptions,
    TranscriptionInfo,
    TtsCapabilities,
    Voice,
    Word,
)
from bragi.backends.sentences import split_sentences
from bragi.errors import EngineError, UnknownVoiceError, UnsupportedCapabilityError
from fakes import GATE_TIMEOUT, sine, wait_until

__all__ = [
    "CLONE",
    "ISOLATED",
    "STT",
    "TTS",
    "VOICES",
    "CloningScripted",
    "IsolatedScripted",
    "Script",
    "ScriptOptions",
    "ScriptedBackend",
]

VOICES = (Voice("alba", "en-GB", "female"), Voice("bert", "en-US", "male"))
TTS_RATE = 22_050


class ScriptOptions(BackendOptions):
    workdir: str | None = None
    segments: int = 3
    gate_at: int | None = None  # the segment or sentence that waits for its gate file
    close_gate: int | None = None  # a stream closed early waits for this gate to end
    load: Literal["ok", "raise", "crash"] = "ok"
    ballast_mb: int = 0  # memory the engine holds, to see it go with the worker
    path: list[str] = Field(default_factory=list)  # put first on sys.path at load
    imports: list[str] = Field(default_factory=list)  # imported at load (a stand-in torch)


class Script:
    """Events out, gates in, through files in ``workdir`` (both sides use it)."""

    def __init__(self, workdir: str | Path | None):
        self.dir = Path(workdir) if workdir else None

    def log(self, event: str) -> None:
        if self.dir is not None:
            with open(self.dir / "events", "a") as events:
                events.write(event + "\n")

    def events(self) -> list[str]:
        assert self.dir is not None
        path = self.dir / "events"
        return path.read_text().splitlines() if path.exists() else []

    def wait_for(self, event: str) -> None:
        wait_until(lambda: event in self.events(), 30.0, f"event {event!r}")

    def open_gate(self, index: int) -> None:
        assert self.dir is not None
        (self.dir / f"open-{index}").touch()

    def wait_gate(self, index: int) -> None:
        assert self.dir is not None
        gate = self.dir / f"open-{index}"
        try:
            wait_until(gate.exists, GATE_TIMEOUT, f"gate {index}")
        except AssertionError as exc:
            raise EngineError(str(exc)) from None

    def trouble(self, kind: str | None, index: int) -> None:
        if kind is None:
            return
        self.log(f"{kind} {index}")
        if kind == "crash":
            os._exit(3)
        if kind == "hang":
            threading.Event().wait()  # until the server kills this process
        raise EngineError(f"the engine failed at item {index}")


def _stt_trouble(prompt: str | None) -> tuple[str | None, int]:
    match = re.fullmatch(r"(crash|hang|fail)@(\d+)", prompt or "")
    return (match.group(1), int(match.group(2))) if match else (None, -1)


class ScriptedStt:
    def __init__(self, script: Script, options: ScriptOptions, ballast: Any):
        self.script, self.options, self.ballast = script, options, ballast
        self.capabilities = SttCapabilities(
            languages=frozenset({"en", "de"}), translate=True, word_timestamps=True
        )

    def transcribe(
        self, audio: Audio, options: TranscribeOptions
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        if options.language == "de" and options.task == "translate":
            raise UnsupportedCapabilityError("cannot translate from German", param="language")
        self.script.log(f"transcribe {audio.sample_rate} {len(audio.samples)}")
        info = TranscriptionInfo(options.language or "en", audio.duration, 0.75)
        return self._segments(*_stt_trouble(options.prompt)), info

    def _segments(self, trouble: str | None, trouble_at: int) -> Iterator[Segment]:
        index = 0
        try:
            for index in range(self.options.segments):
                self.script.trouble(trouble if index == trouble_at else None, index)
                if index == self.options.gate_at:
                    self.script.log(f"waiting {index}")
                    self.script.wait_gate(index)
                self.script.log(f"segment {index}")
                start, end = index * 0.5, index * 0.5 + 0.5
                word = Word(f"word{index}", start, end, 0.5)
                yield Segment(index, start, end, f" word{index}", tokens=(index, 7), words=(word,))
        except GeneratorExit:
            if self.options.close_gate is not None:
                self.script.log(f"closing {index}")
                self.script.wait_gate(self.options.close_gate)
            self.script.log(f"closed {index}")
            raise
        self.script.log("finished")

    def close(self) -> None:
        self.script.log("engine closed")


class ScriptedTts:
    def __init__(self, script: Script, options: ScriptOptions, ballast: Any):
        self.script, self.options, self.ballast = script, options, ballast
        self.capabilities = TtsCapabilities(
            sample_rate=TTS_RATE, max_native_speed=2.0, languages=frozenset({"en"})
        )

    def voices(self) -> Sequence[Voice]:
        return VOICES

    def synthesize(self, request: SynthesisRequest) -> Iterator[Audio]:
        if request.voice not in {v.id for v in VOICES}:
            raise UnknownVoiceError(f"no voice {request.voice!r}: alba, bert", param="voice")
        return self._chunks(request, split_sentences(request.text))

    def _chunks(self, request: SynthesisRequest, sentences: list[str]) -> Iterator[Audio]:
        index = 0
        try:
            for index, sentence in enumerate(sentences):
                found = re.search(r"CRASH|HANG|FAIL", sentence)
                self.script.trouble(found.group(0).lower() if found else None, index)
                if index == self.options.gate_at:
                    self.script.log(f"waiting {index}")
                    self.script.wait_gate(index)
                self.script.log(f"chunk {index}")
                yield sine(0.25 / request.speed, TTS_RATE, 200.0 + 100.0 * index)
        except GeneratorExit:
            self.script.log(f"closed {index}")
            raise

    def close(self) -> None:
        self.script.log("engine closed")


class ScriptedBackend:
    """A backend whose engines follow :class:`ScriptOptions` and the request's script."""

    extra = "fake"
    options_model = ScriptOptions

    def __init__(self, name: str, kind: ModelKind):
        self.name = name
        self.kind = kind

    def is_available(self) -> bool:
        return True

    def detect(self, model_dir: Path) -> bool:
        return (model_dir / f"{self.name}.json").is_file()

    def release(self) -> None:
        """Nothing to open at teardown: gates are files (``serve_app`` calls this)."""

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> Engine:
        opts = ScriptOptions.model_validate(options.model_dump())
        script = Script(opts.workdir)
        sys.path[:0] = opts.path
        for module in opts.imports:
            importlib.import_module(module)
        script.log(f"load {os.getpid()} {device} {model_dir.name}")
        if opts.load == "raise":
            raise RuntimeError("weights file is truncated")
        if opts.load == "crash":
            os._exit(5)
        ballast = np.ones(opts.ballast_mb * 1024 * 1024 // 8)  # written, so resident
        if self.kind is ModelKind.STT:
            return ScriptedStt(script, opts, ballast)
        return ScriptedTts(script, opts, ballast)


class IsolatedScripted(ScriptedBackend):
    """A scripted backend that declares an environment of its own, like a torch engine."""

    requirements = ("six==1.16.0",)


STT = ScriptedBackend("script-stt", ModelKind.STT)
TTS = ScriptedBackend("script-tts", ModelKind.TTS)
ISOLATED = IsolatedScripted("script-isolated", ModelKind.STT)


class ScriptedCloningTts(ScriptedTts):
    """A scripted engine that also speaks in cloned voices. For each cloned request it logs
    ``clone <id> <rate> <samples> <sum of |samples|> <voice> <transcript>``, so a test sees
    exactly what reference crossed into the worker."""

    def __init__(self, script: Script, options: ScriptOptions, ballast: Any):
        super().__init__(script, options, ballast)
        self.capabilities = dataclasses.replace(self.capabilities, cloning=True)

    def synthesize(self, request: SynthesisRequest) -> Iterator[Audio]:
        reference = request.reference
        if reference is None:
            return super().synthesize(request)
        samples = reference.audio.samples
        self.script.log(
            f"clone {reference.id} {reference.audio.sample_rate} {len(samples)} "
            f"{float(np.abs(samples).sum()):.3f} {request.voice} {reference.transcript}"
        )
        return self._chunks(request, split_sentences(request.text))


class CloningScripted(ScriptedBackend):
    """A scripted TTS backend whose engine clones voices (:class:`ScriptedCloningTts`)."""

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> Engine:
        engine = super().load(model_dir, device, options)
        assert isinstance(engine, ScriptedTts)
        return ScriptedCloningTts(engine.script, engine.options, engine.ballast)


CLONE = CloningScripted("script-clone", ModelKind.TTS)
