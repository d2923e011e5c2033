"""What a backend is: the small typed protocols every engine adapter implements.

A *backend* (one module per engine) recognises a model from its files and loads it
into an *engine*. A speech-to-text engine yields segments lazily; a text-to-speech
engine yields audio chunks, at least one per sentence. Capabilities an engine lacks
are declared, so the API refuses a request up front instead of failing mid-stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from bragi.audio.types import Audio
from bragi.types import Device, ModelKind, Segment, TranscriptionInfo, Word

__all__ = [
    "Backend",
    "BackendOptions",
    "CapabilityListing",
    "CompanionModels",
    "Device",
    "DiarizeOptions",
    "DiarizerCapabilities",
    "Engine",
    "InstructionListing",
    "Instructions",
    "IsolatedBackend",
    "KnownSpeaker",
    "ModelCapabilities",
    "ModelCheck",
    "ModelKind",
    "Segment",
    "SpeakerDiarizer",
    "SpeakerTurn",
    "SpeechStream",
    "SpeechToText",
    "StreamingSpeechToText",
    "SttCapabilities",
    "SynthesisRequest",
    "TextToSpeech",
    "TimedText",
    "TranscribeOptions",
    "TranscriptionInfo",
    "TtsCapabilities",
    "VadRequest",
    "Voice",
    "VoiceListing",
    "VoiceReference",
    "Word",
    "WordTimestampListing",
]


class BackendOptions(BaseModel):
    """Base for a backend's ``options:``; unknown keys fail at config time."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- speech to text ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VadRequest:
    """A request's own voice-activity settings (OpenAI's ``chunking_strategy=server_vad``);
    None fields keep the engine's."""

    threshold: float | None = None
    silence_ms: int | None = None  # silence that ends a stretch of speech
    padding_ms: int | None = None  # audio kept before speech starts


@dataclass(frozen=True, slots=True)
class TranscribeOptions:
    task: Literal["transcribe", "translate"] = "transcribe"
    language: str | None = None  # ISO 639-1; None = detect
    prompt: str | None = None
    temperature: float = 0.0
    word_timestamps: bool = False
    #: Words to favour (OpenAI's ``keywords[]``; faster-whisper's hotwords).
    hotwords: tuple[str, ...] = ()
    #: Candidate languages (OpenAI's ``languages[]``): detect among these only.
    languages: tuple[str, ...] = ()
    #: Whether the caller wants per-token log-probabilities (``include[]=logprobs``).
    logprobs: bool = False
    vad: VadRequest | None = None
    #: Whether the segments' start and end are read (verbose_json, srt, vtt); when
    #: False only the text is, and an engine may return coarser segments if cheaper.
    segment_timestamps: bool = True


@dataclass(frozen=True, slots=True)
class SttCapabilities:
    sample_rate: int = 16_000
    #: ISO 639-1 codes the model understands; None means it detects among many.
    languages: frozenset[str] | None = None
    translate: bool = False
    word_timestamps: bool = False
    #: Which of the newer request fields the engine honours (else the API answers 400).
    hotwords: bool = False
    logprobs: bool = False
    vad: bool = False  # a request's own VAD settings (chunking_strategy=server_vad)


@runtime_checkable
class SpeechToText(Protocol):
    capabilities: SttCapabilities

    def transcribe(
        self, audio: Audio, options: TranscribeOptions
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Start decoding; segments are produced lazily as the iterator is consumed."""
        ...

    def close(self) -> None: ...


class SpeechStream(Protocol):
    """One live recording fed to an engine piece by piece (see StreamingSpeechToText)."""

    def accept(self, audio: Audio) -> str:
        """Take the next piece; return the text of everything so far (it may still change)."""
        ...

    def finish(self) -> list[Segment]:
        """The final segments of everything fed (times from the first sample fed)."""
        ...


@runtime_checkable
class StreamingSpeechToText(Protocol):
    """An engine that decodes as audio arrives (Vosk), so live partial text costs nothing
    extra. Its backend says so without loading (``streaming = True``), for /v1/models."""

    def open_stream(self, options: TranscribeOptions) -> SpeechStream: ...


# --- text to speech ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Voice:
    id: str
    language: str | None = None  # BCP 47-ish, e.g. "en-US", "ja"
    gender: Literal["female", "male"] | None = None


#: How an engine follows a request's ``instructions``: ``none`` ignores them (as OpenAI's
#: ``tts-1`` does); ``style`` takes them as how to speak (emotion, pace, tone); ``voice``
#: takes them as the description of the voice itself, so a request needs them (or the
#: model a configured default).
Instructions = Literal["none", "style", "voice"]


@dataclass(frozen=True, slots=True)
class TtsCapabilities:
    sample_rate: int
    native_speed: bool = True
    #: Fastest speed the engine does faithfully itself (VITS-style models saturate near
    #: 2x); the server time-stretches the rest. Slower speeds are always native.
    max_native_speed: float = 4.0
    languages: frozenset[str] = field(default_factory=frozenset)
    #: Whether the engine speaks in a voice cloned from a reference recording
    #: (``SynthesisRequest.reference``); engines that cannot get a 400 before they run.
    cloning: bool = False
    #: What the engine does with ``SynthesisRequest.instructions`` (see :data:`Instructions`).
    instructions: Instructions = "none"


@dataclass(frozen=True, slots=True)
class TimedText:
    """A stretch of a reference's transcript and where it is spoken, in seconds."""

    start: float
    end: float
    text: str


@dataclass(frozen=True, slots=True)
class VoiceReference:
    """A cloned voice: the recording (and, if known, its transcript) to speak like.

    ``id`` is stable for as long as the stored voice exists, so an engine may cache
    what it computes from the recording (speaker latents) under it. ``timed_transcript``
    is the transcript in timed stretches when Bragi transcribed the recording itself, so
    an engine that uses less of the recording can keep the words that go with it.
    """

    id: str
    audio: Audio  # mono float32, at the rate it was stored
    transcript: str | None = None
    timed_transcript: tuple[TimedText, ...] = ()


@dataclass(frozen=True, slots=True)
class SynthesisRequest:
    text: str
    voice: str  # a built-in voice's id, or the cloned voice's name when ``reference`` is set
    speed: float = 1.0
    language: str | None = None  # override the voice's default language
    reference: VoiceReference | None = None
    #: OpenAI's ``instructions``: how to speak, or (``voice`` engines) the voice itself.
    #: None for engines that cannot follow them (the server drops them).
    instructions: str | None = None


@runtime_checkable
class TextToSpeech(Protocol):
    capabilities: TtsCapabilities

    def voices(self) -> Sequence[Voice]: ...

    def synthesize(self, request: SynthesisRequest) -> Iterator[Audio]:
        """Yield float32 chunks at ``capabilities.sample_rate``, one per sentence or finer."""
        ...

    def close(self) -> None: ...


# --- speaker diarization ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class KnownSpeaker:
    """A speaker to name: a short recording of them (OpenAI's known_speaker_references)."""

    name: str
    reference: Audio


@dataclass(frozen=True, slots=True)
class DiarizeOptions:
    #: Exactly this many speakers, when the caller knows; else the threshold decides.
    num_speakers: int | None = None
    #: Cosine distance below which two stretches are one speaker (None: the model's).
    threshold: float | None = None
    known_speakers: tuple[KnownSpeaker, ...] = ()


@dataclass(frozen=True, slots=True)
class SpeakerTurn:
    """A stretch of one speaker. ``speaker`` is a known speaker's name when ``known``, else
    an opaque id (the API relabels those ``A``, ``B``, ... in order of appearance)."""

    start: float
    end: float
    speaker: str
    known: bool = False


@dataclass(frozen=True, slots=True)
class DiarizerCapabilities:
    sample_rate: int = 16_000


@runtime_checkable
class SpeakerDiarizer(Protocol):
    capabilities: DiarizerCapabilities

    def diarize(self, audio: Audio, options: DiarizeOptions) -> list[SpeakerTurn]:
        """Who spoke when, in time order; overlapping speech may give overlapping turns."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class CompanionModels(Protocol):
    """A backend whose model needs a second model's files (a diarizer's speaker-embedding
    model). Each option named here holds a model reference (catalog name, hub repo or
    directory); the store fetches it like any model and the option is replaced by the
    directory before ``load``."""

    def companions(self, options: BackendOptions) -> dict[str, str]: ...


Engine = SpeechToText | TextToSpeech | SpeakerDiarizer


# --- the adapter ------------------------------------------------------------


class Backend(Protocol):
    """One engine library behind Bragi. Registered under the ``bragi.backends`` entry point."""

    name: str
    kind: ModelKind
    #: pip extra that installs the engine library: ``pip install 'bragi[<extra>]'``
    extra: str
    options_model: type[BackendOptions]

    def is_available(self) -> bool:
        """Whether the engine library is installed (checked without importing it)."""
        ...

    def detect(self, model_dir: Path) -> bool:
        """Whether the files in ``model_dir`` are a model this backend can load."""
        ...

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> Engine:
        """Load the model; the engine library is imported here, not at module import.

        ``options`` is an instance of ``options_model``, validated at config time.
        """
        ...


@runtime_checkable
class IsolatedBackend(Protocol):
    """A backend whose engine runs in a worker process from its own environment (torch
    engines). ``bragi backend install <name>`` creates that environment with
    ``requirements`` plus Bragi itself; the backend module is still imported by the
    server, so it must import its library only inside ``load()``, and its
    ``is_available()`` says True (the environment is checked when the model loads).
    """

    #: Pinned pip requirements of the engine's environment, e.g. ``("torch==2.13.0",
    #: "speechbrain==1.0.3")``; torch packages come from the device's torch index.
    requirements: Sequence[str]
    # Optional: ``verify_imports``, modules ``bragi backend install`` imports in the new
    # environment to prove it works (e.g. ``("torch", "speechbrain.inference.ASR")``);
    # ``no_deps``, requirements installed after the others without their declared
    # dependencies (packages whose metadata cannot install, e.g. fish-speech's); and
    # ``environment``, the environment's name when backends whose pins agree share one
    # (default: the backend's name). Backends sharing an environment declare the same
    # ``requirements`` and ``no_deps``.


@runtime_checkable
class ModelCheck(Protocol):
    """A backend that refuses, from the files and without loading, a model it recognises
    but cannot serve (an unsupported version of its format), so the model fails at once,
    with the reason, instead of at its first request."""

    def check(self, model_dir: Path) -> None:
        """Raise :class:`~bragi.errors.ConfigError` saying why ``model_dir`` is refused."""
        ...


@runtime_checkable
class InstructionListing(Protocol):
    """A TTS backend that knows from a model's files, without loading it, what the model
    does with ``instructions`` (shown in ``/v1/models`` before the model loads)."""

    def instructions_in(self, model_dir: Path, options: BackendOptions | None) -> Instructions: ...


@runtime_checkable
class VoiceListing(Protocol):
    """A TTS backend that can list a model's voices from its files, without loading it."""

    def voices_in(self, model_dir: Path, options: BackendOptions | None) -> Sequence[Voice]: ...


@dataclass(frozen=True, slots=True)
class ModelCapabilities:
    """What a text-to-speech model can do that a request may depend on, known before it
    loads: from its files (:class:`CapabilityListing`) or its catalog entry. Each field is
    named as in :class:`TtsCapabilities`, where the loaded engine says the same; a new
    capability is one field in each."""

    cloning: bool = False
    instructions: Instructions = "none"


@runtime_checkable
class CapabilityListing(Protocol):
    """A TTS backend that can tell a model's capabilities from its files, without loading
    it (beside :class:`VoiceListing`). Backends without it: none, until loaded."""

    def capabilities_in(
        self, model_dir: Path, options: BackendOptions | None
    ) -> ModelCapabilities: ...


@runtime_checkable
class WordTimestampListing(Protocol):
    """A speech-to-text backend that says, without loading a model, whether it gives word
    times (what its engine's ``SttCapabilities.word_timestamps`` will say), so
    ``/v1/models`` can tell a client before its first request. Arguments as for ``load``;
    ``model_dir`` is None while the files are not there yet, and the answer None when it
    depends on them."""

    def word_timestamps_in(
        self, model_dir: Path | None, device: Device, options: BackendOptions | None
    ) -> bool | None: ...
