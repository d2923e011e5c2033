"""Named fakes for API-layer and lifecycle tests: backends and engines that implement
Bragi's real protocols (:mod:`bragi.backends.protocol`), record what happened to them,
and can be held at chosen points with :class:`threading.Event` gates.

A fake backend recognises a model directory by a marker file named after it
(``fake-stt.json`` for :class:`FakeSttBackend`); :func:`make_model_dir` makes one.
Every wait on a gate is bounded (:data:`GATE_TIMEOUT`), so a test that forgets to
open a gate fails instead of hanging the server; :meth:`FakeBackend.release` opens
every gate at teardown.
"""

from __future__ import annotations

import dataclasses
import io
import threading
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from bragi.audio.types import Audio
from bragi.backends.protocol import (
    BackendOptions,
    Device,
    Engine,
    Instructions,
    ModelCapabilities,
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
from bragi.errors import EngineError

__all__ = [
    "FAKE_VOICES",
    "GATE_TIMEOUT",
    "SECONDS_PER_SENTENCE",
    "BrokenSttBackend",
    "BuggyDetectBackend",
    "FailingBackend",
    "FakeBackend",
    "FakeClock",
    "FakeCloningTtsBackend",
    "FakeCloningTtsEngine",
    "FakeMultiSpeakerTtsBackend",
    "FakeOptions",
    "FakeSttBackend",
    "FakeSttEngine",
    "FakeStyledTtsBackend",
    "FakeStyledTtsEngine",
    "FakeTtsBackend",
    "FakeTtsEngine",
    "FakeWordlessSttBackend",
    "SlowClosingBackend",
    "SlowLoadingBackend",
    "TranscriptionCall",
    "make_model_dir",
    "sine",
    "wait_until",
    "wav_bytes",
]

#: Longest a fake waits on a gate before failing the request (a test bug, not a hang).
GATE_TIMEOUT = 30.0
#: Seconds of audio the fake TTS engine makes per sentence (at speed 1).
SECONDS_PER_SENTENCE = 0.5


class FakeClock:
    """The manager's clock, moved by hand: ``clock.now`` seconds, ``clock.advance(s)``."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Wait, at most ``timeout`` seconds, for ``condition()`` to hold (a bounded poll)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        pause.wait(0.005)


def _wait_gate(gate: threading.Event, where: str) -> None:
    if not gate.wait(GATE_TIMEOUT):
        raise EngineError(f"fake engine: gate before {where} stayed closed for {GATE_TIMEOUT} s")


def sine(seconds: float, sample_rate: int, frequency: float = 440.0) -> Audio:
    """A sine tone at a third of full scale."""
    t = np.arange(round(seconds * sample_rate), dtype=np.float32) / sample_rate
    samples = (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    return Audio(samples, sample_rate)


def wav_of(samples: npt.NDArray[np.floating[Any]], sample_rate: int = 16_000) -> bytes:
    """A mono 16-bit WAV file of ``samples`` (clipped to [-1, 1])."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def wav_bytes(seconds: float = 1.0, sample_rate: int = 16_000) -> bytes:
    """A mono 16-bit WAV file holding a tone: something every decoder accepts."""
    return wav_of(sine(seconds, sample_rate).samples, sample_rate)


def make_model_dir(parent: Path, backend_name: str, name: str | None = None) -> Path:
    """A model directory that ``backend_name``'s fake recognises (its marker file inside)."""
    model_dir = parent / (name or backend_name)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / f"{backend_name}.json").write_text("{}\n")
    return model_dir


class FakeOptions(BackendOptions):
    """``options:`` of a fake model; unknown keys fail like a real backend's."""

    label: str = "fake"


class FakeBackend:
    """What every fake backend shares: a marker file, load counting, gates to release."""

    name: ClassVar[str]
    kind: ClassVar[ModelKind]
    extra = "fake"
    options_model: ClassVar[type[BackendOptions]] = FakeOptions

    def __init__(self) -> None:
        self.loads = 0  # load() calls that started
        self.engines: list[Engine] = []
        self._lock = threading.Lock()

    @property
    def marker(self) -> str:
        return f"{self.name}.json"

    def is_available(self) -> bool:
        return True

    def detect(self, model_dir: Path) -> bool:
        return (model_dir / self.marker).is_file()

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> Engine:
        with self._lock:
            self.loads += 1
        engine = self._make_engine(model_dir)
        with self._lock:
            self.engines.append(engine)
        return engine

    def _make_engine(self, model_dir: Path) -> Engine:
        raise NotImplementedError

    def gates(self) -> list[threading.Event]:
        return []

    def release(self) -> None:
        """Open every gate (teardown), so no request stays blocked in a worker thread."""
        for gate in self.gates():
            gate.set()


# --- speech to text ---------------------------------------------------------


@dataclass
class TranscriptionCall:
    """One ``transcribe()`` call as the fake engine saw it."""

    options: TranscribeOptions
    duration: float
    produced: int = 0  # segments handed out
    finished: bool = False  # every segment handed out
    closed: threading.Event = field(default_factory=threading.Event)  # stopped early
    done: threading.Event = field(default_factory=threading.Event)  # over, either way


class FakeSttEngine:
    """Transcribes any audio into ``segments`` lazily produced segments ``" word{i}"``.

    With a ``gate``, every segment from index ``gate_from`` on waits for it to open.
    """

    def __init__(self, backend: FakeSttBackend):
        self._backend = backend
        self.capabilities = backend.capabilities
        self.calls: list[TranscriptionCall] = []
        self.closed = False

    def transcribe(
        self, audio: Audio, options: TranscribeOptions
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        call = TranscriptionCall(options, audio.duration)
        self.calls.append(call)
        self._backend.calls.append(call)
        info = TranscriptionInfo(language=options.language or "en", duration=audio.duration)
        return self._segments(call), info

    def _segments(self, call: TranscriptionCall) -> Iterator[Segment]:
        backend = self._backend
        try:
            for index in range(backend.segments):
                if backend.gate is not None and index >= backend.gate_from:
                    _wait_gate(backend.gate, f"segment {index}")
                call.produced += 1
                start, text = index * 0.5, f" word{index}"
                words = None
                if backend.words and call.options.word_timestamps:
                    words = (Word(text, start, start + 0.4),)
                yield Segment(id=index, start=start, end=start + 0.5, text=text, words=words)
            call.finished = True
        except GeneratorExit:
            call.closed.set()
            raise
        finally:
            call.done.set()

    def close(self) -> None:
        self.closed = True


class FakeSttBackend(FakeBackend):
    """``fake-stt``: an English-only speech-to-text backend without translation."""

    name = "fake-stt"
    kind = ModelKind.STT

    def __init__(
        self,
        *,
        segments: int = 3,
        gate: threading.Event | None = None,
        gate_from: int = 0,
        capabilities: SttCapabilities | None = None,
        words: bool = False,
    ):
        super().__init__()
        self.segments = segments
        self.words = words  # each segment one timed word, when word timestamps are asked
        self.gate = gate
        self.gate_from = gate_from
        self.capabilities = capabilities or SttCapabilities(
            languages=frozenset({"en"}), translate=False, word_timestamps=True
        )
        self.calls: list[TranscriptionCall] = []  # across every engine this backend loaded

    def _make_engine(self, model_dir: Path) -> FakeSttEngine:
        return FakeSttEngine(self)

    def gates(self) -> list[threading.Event]:
        return [self.gate] if self.gate is not None else []


class FakeWordlessSttBackend(FakeSttBackend):
    """``fake-stt-wordless``: speech to text without word times, which its backend says
    before a model loads (as the built-in backends do; ``fake-stt`` does not say)."""

    name = "fake-stt-wordless"

    def __init__(self) -> None:
        super().__init__(capabilities=SttCapabilities(languages=frozenset({"en"})))

    def word_timestamps_in(
        self, model_dir: Path | None, device: Device, options: BackendOptions | None
    ) -> bool:
        return False


class BrokenSttEngine(FakeSttEngine):
    """Loads, then fails every transcription the way an engine library would."""

    def transcribe(
        self, audio: Audio, options: TranscribeOptions
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


class BrokenSttBackend(FakeSttBackend):
    """``fake-stt-broken``: a speech-to-text model that loads but cannot transcribe."""

    name = "fake-stt-broken"

    def _make_engine(self, model_dir: Path) -> BrokenSttEngine:
        return BrokenSttEngine(self)


class SlowLoadingBackend(FakeSttBackend):
    """``fake-slow``: a speech-to-text backend whose load() waits for ``load_gate``.

    ``load_started`` is set when a load begins, so a test knows the load is under way.
    """

    name = "fake-slow"

    def __init__(self, *, load_gate: threading.Event | None = None, segments: int = 2):
        super().__init__(segments=segments)
        self.load_gate = load_gate or threading.Event()
        self.load_started = threading.Event()

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> Engine:
        self.load_started.set()
        _wait_gate(self.load_gate, "load")
        return super().load(model_dir, device, options)

    def gates(self) -> list[threading.Event]:
        return [*super().gates(), self.load_gate]


class SlowClosingBackend(FakeSttBackend):
    """``fake-closing``: a speech-to-text backend whose engines' close() waits for
    ``close_gate`` (set ``closing`` when a close begins).

    It keeps the books a race test checks: ``events`` records ``("loaded", n)`` and
    ``("closed", n)`` in the order they happen (``n`` numbers the engines from 0), and
    ``resident`` counts engines from the start of their load to the end of their close,
    ``most_resident`` its peak. With ``close_error``, every close() raises once done.
    """

    name = "fake-closing"

    def __init__(
        self, *, close_gate: threading.Event | None = None, close_error: str | None = None
    ):
        super().__init__()
        self.close_gate = close_gate or threading.Event()
        self.close_error = close_error  # close() raises RuntimeError(close_error) at the end
        self.closing = threading.Event()
        self.events: list[tuple[str, int]] = []
        self.resident = 0
        self.most_resident = 0

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> Engine:
        with self._lock:
            self.resident += 1
            self.most_resident = max(self.most_resident, self.resident)
        engine = super().load(model_dir, device, options)
        with self._lock:
            self.events.append(("loaded", self.engines.index(engine)))
        return engine

    def _make_engine(self, model_dir: Path) -> FakeSttEngine:
        return _SlowClosingEngine(self)

    def gates(self) -> list[threading.Event]:
        return [*super().gates(), self.close_gate]


class _SlowClosingEngine(FakeSttEngine):
    def __init__(self, backend: SlowClosingBackend):
        super().__init__(backend)
        self._closing_backend = backend

    def close(self) -> None:
        backend = self._closing_backend
        backend.closing.set()
        _wait_gate(backend.close_gate, "close")
        super().close()
        with backend._lock:
            backend.resident -= 1
            backend.events.append(("closed", backend.engines.index(self)))
        if backend.close_error is not None:
            raise RuntimeError(backend.close_error)


class BuggyDetectBackend(FakeSttBackend):
    """``fake-buggy``: its detect() raises on a directory with its marker, as a broken
    plugin might (anything else it does not recognise)."""

    name = "fake-buggy"

    def detect(self, model_dir: Path) -> bool:
        if (model_dir / self.marker).is_file():
            raise RuntimeError("fake-buggy: the plugin tripped over its own marker file")
        return False


class FailingBackend(FakeBackend):
    """``fake-broken``: every load fails with ``reason`` (as an engine library would)."""

    name = "fake-broken"
    kind = ModelKind.STT

    def __init__(self, reason: str = "weights file is truncated (expected 74 MB, found 3 MB)"):
        super().__init__()
        self.reason = reason

    def _make_engine(self, model_dir: Path) -> Engine:
        raise RuntimeError(self.reason)


# --- text to speech ---------------------------------------------------------

FAKE_VOICES: tuple[Voice, ...] = (
    Voice("af_alloy", "en-us", "female"),
    Voice("am_echo", "en-us", "male"),
    Voice("bf_emma", "en-gb", "female"),
)


class FakeTtsEngine:
    """Speaks each sentence as a 0.5 s tone at 24 kHz (shorter at higher speed); a
    sentence with ``EXPLODE`` in it raises RuntimeError, as a library failing its own way.

    Appends ``("synthesized", i)`` to the backend's ``events`` after each sentence and,
    with a ``gate``, ``("waiting", i)`` before waiting for it ahead of sentence
    ``gate_at`` (the last one by default); ``("closed", i)`` when the stream is closed
    before sentence ``i``.
    """

    def __init__(self, backend: FakeTtsBackend):
        self._backend = backend
        self.capabilities = TtsCapabilities(
            sample_rate=backend.sample_rate, native_speed=True, languages=frozenset({"en"})
        )
        self.closed = False

    def voices(self) -> Sequence[Voice]:
        return self._backend.voices

    def synthesize(self, request: SynthesisRequest) -> Iterator[Audio]:
        self._backend.requests.append(request)
        return self._chunks(request, split_sentences(request.text))

    def _chunks(self, request: SynthesisRequest, sentences: list[str]) -> Iterator[Audio]:
        backend = self._backend
        gated = backend.gate_at % len(sentences)
        index = 0
        try:
            for index, sentence in enumerate(sentences):
                if "EXPLODE" in sentence:
                    raise RuntimeError("the vocoder exploded")
                if backend.gate is not None and index == gated:
                    backend.events.append(("waiting", index))
                    _wait_gate(backend.gate, f"sentence {index}")
                seconds = SECONDS_PER_SENTENCE / request.speed
                chunk = sine(seconds, backend.sample_rate, 220.0 + 110.0 * index)
                backend.events.append(("synthesized", index))
                yield chunk
        except GeneratorExit:
            backend.events.append(("closed", index + 1))
            raise

    def close(self) -> None:
        self.closed = True


class FakeTtsBackend(FakeBackend):
    """``fake-tts``: three English voices (``FAKE_VOICES``), one chunk per sentence."""

    name = "fake-tts"
    kind = ModelKind.TTS
    voices: Sequence[Voice] = FAKE_VOICES

    def __init__(
        self, *, gate: threading.Event | None = None, gate_at: int = -1, sample_rate: int = 24_000
    ):
        super().__init__()
        self.gate = gate
        self.gate_at = gate_at  # the sentence the gate holds back; -1: the last one
        self.sample_rate = sample_rate
        self.events: list[tuple[str, int]] = []
        self.requests: list[SynthesisRequest] = []
        self.listings = 0  # voices_in() calls: reading a model's files for its voices

    def voices_in(self, model_dir: Path, options: BackendOptions | None) -> Sequence[Voice]:
        """The voices, from the files alone (a :class:`VoiceListing`)."""
        self.listings += 1
        return self.voices

    def _make_engine(self, model_dir: Path) -> FakeTtsEngine:
        return FakeTtsEngine(self)

    def gates(self) -> list[threading.Event]:
        return [self.gate] if self.gate is not None else []


class FakeCloningTtsEngine(FakeTtsEngine):
    """:class:`FakeTtsEngine` that also speaks in cloned voices (``capabilities.cloning``)."""

    def __init__(self, backend: FakeTtsBackend):
        super().__init__(backend)
        self.capabilities = dataclasses.replace(self.capabilities, cloning=True)


class FakeCloningTtsBackend(FakeTtsBackend):
    """``fake-clone``: :class:`FakeTtsBackend` whose engine clones voices. Each request,
    with the :class:`~bragi.backends.protocol.VoiceReference` it carried, is in
    ``requests``."""

    name = "fake-clone"

    def capabilities_in(self, model_dir: Path, options: BackendOptions | None) -> ModelCapabilities:
        """What the engine can do, from the files alone (a :class:`CapabilityListing`)."""
        return ModelCapabilities(cloning=True)

    def _make_engine(self, model_dir: Path) -> FakeCloningTtsEngine:
        return FakeCloningTtsEngine(self)


class FakeMultiSpeakerTtsBackend(FakeTtsBackend):
    """``fake-multi``: :class:`FakeTtsBackend` with one voice of two speakers
    (``base:speaker`` ids, as Piper's multi-speaker voices are listed)."""

    name = "fake-multi"
    voices = (Voice("multi:alice", "en-us", "female"), Voice("multi:bob", "en-us", "male"))


class FakeStyledTtsEngine(FakeTtsEngine):
    """:class:`FakeTtsEngine` that follows ``instructions`` as a speaking style."""

    def __init__(self, backend: FakeTtsBackend):
        super().__init__(backend)
        self.capabilities = dataclasses.replace(self.capabilities, instructions="style")


class FakeStyledTtsBackend(FakeTtsBackend):
    """``fake-styled``: :class:`FakeTtsBackend` whose engine follows ``instructions``; it
    says so from the files too (an :class:`~bragi.backends.protocol.InstructionListing`)."""

    name = "fake-styled"

    def instructions_in(self, model_dir: Path, options: BackendOptions | None) -> Instructions:
        return "style"

    def _make_engine(self, model_dir: Path) -> FakeStyledTtsEngine:
        return FakeStyledTtsEngine(self)
