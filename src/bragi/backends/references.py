"""A cloned voice's reference cut to what an engine can use, with the words that go with it.

Cloning engines condition on a few seconds of speech: F5-TTS on at most about 12 s (its
context holds the reference and the output together), Qwen3-TTS best on 3-15 s, Fish
Speech on 10-30 s. A stored reference may be up to ``voice_max_seconds`` (60 s), so each
engine takes the start of it. Engines that continue the reference's transcript (F5, Fish,
Qwen's in-context mode) need the text of exactly the audio they keep:

- a reference Bragi transcribed itself has its transcript in timed stretches, so the cut
  falls at the end of the last stretch that fits, and the text is those stretches';
- a transcript without times cannot follow a cut, so it is dropped (``transcript_dropped``),
  and the audio is cut at a pause (the energy detector the STT engines use).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from bragi.audio.types import Audio
from bragi.backends.chunked import speech_chunks
from bragi.backends.protocol import VoiceReference
from bragi.errors import InvalidRequestError

__all__ = [
    "FittedReference",
    "PromptCache",
    "fit_reference",
    "long_enough",
    "needs_transcript",
]

PromptT = TypeVar("PromptT")

#: Audio kept after the last word of a timed stretch, so its ending is not clipped.
_TAIL_SECONDS = 0.15


@dataclass(frozen=True, slots=True)
class FittedReference:
    audio: Audio
    transcript: str | None
    #: The reference had a transcript, but it could not follow the cut.
    transcript_dropped: bool = False


def fit_reference(reference: VoiceReference, max_seconds: float) -> FittedReference:
    """The start of ``reference``, at most ``max_seconds`` long, with its transcript."""
    audio = reference.audio
    if audio.duration <= max_seconds:
        return FittedReference(audio, reference.transcript)
    rate = audio.sample_rate
    timed = reference.timed_transcript
    kept = []
    for piece in timed:
        if piece.end > max_seconds:
            break
        kept.append(piece)
    if kept:
        end = min(max_seconds, kept[-1].end + _TAIL_SECONDS)
        text = " ".join(piece.text.strip() for piece in kept if piece.text.strip())
        return FittedReference(Audio(audio.samples[: round(end * rate)], rate), text or None)
    chunks = speech_chunks(audio.samples, rate, max_seconds)
    stop = chunks[0][1] if chunks else round(max_seconds * rate)
    stop = min(stop, round(max_seconds * rate))
    trimmed = Audio(audio.samples[:stop], rate)
    return FittedReference(trimmed, None, transcript_dropped=reference.transcript is not None)


def needs_transcript(engine: str, voice: str, fitted: FittedReference, max_seconds: float) -> str:
    """The transcript an engine cannot clone without; a 400 saying how to get one."""
    if fitted.transcript:
        return fitted.transcript
    if fitted.transcript_dropped:
        reason = (
            f"its recording is longer than the {max_seconds:g} s {engine} uses, and its "
            "transcript has no timing to cut it with"
        )
        fix = (
            f"create it again from a clip of at most {max_seconds:g} s, or without a "
            "transcript so that Bragi transcribes it"
        )
    else:
        reason = "it has no transcript (no speech-to-text model was configured to make one)"
        fix = (
            "create it again with `transcript`, or configure voice_transcription_model so "
            "that Bragi transcribes recordings"
        )
    raise InvalidRequestError(
        f"{engine} clones from a recording and its transcript; voice {voice!r} cannot be "
        f"used: {reason}. {fix[0].upper()}{fix[1:]}.",
        param="voice",
    )


def long_enough(audio: Audio, voice: str, engine: str, min_seconds: float) -> Audio:
    """``audio``, or a 400 saying the voice's reference is shorter than ``engine`` needs."""
    if audio.duration < min_seconds:
        raise InvalidRequestError(
            f"the reference of voice {voice!r} is {audio.duration:.2f} s long; {engine} "
            f"needs at least {min_seconds:g} s",
            param="voice",
        )
    return audio


class PromptCache(Generic[PromptT]):
    """What an engine derives from each cloned voice's reference (codes, tensors), made
    once and kept for the most recently used voices; shared by the engine's threads."""

    def __init__(self) -> None:
        self._prompts: OrderedDict[str, PromptT] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, voice_id: str) -> PromptT | None:
        with self._lock:
            prompt = self._prompts.get(voice_id)
            if prompt is not None:
                self._prompts.move_to_end(voice_id)
            return prompt

    def put(self, voice_id: str, prompt: PromptT, keep: int) -> None:
        """Keep ``prompt``, and at most ``keep`` prompts in all (0: keep none)."""
        if keep <= 0:
            return
        with self._lock:
            self._prompts[voice_id] = prompt
            self._prompts.move_to_end(voice_id)
            while len(self._prompts) > keep:
                self._prompts.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._prompts.clear()
