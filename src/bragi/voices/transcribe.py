"""A cloned voice's transcript, made once by a speech-to-text model when the creator gave none.

F5-TTS and Fish Speech clone only from a recording and its transcript, and Qwen3-TTS's
Base model clones better with one (it continues the reference). Asking users for an exact
transcript is the complaint every cloning project hears, so Bragi writes it with one of its
own STT models (``voice_transcription_model``, the starter Whisper by default), at
creation, and keeps it with the voice, word by word with times, so that an engine using
only the start of a long recording keeps only the words that go with it. Shared by
``POST /v1/audio/voices`` and ``bragi voices add``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from anyio import to_thread

from bragi.audio.resample import resample
from bragi.audio.types import Audio
from bragi.backends.protocol import ModelKind, SpeechToText, TimedText, TranscribeOptions
from bragi.errors import BragiError, RateLimitError

if TYPE_CHECKING:
    from bragi.models.manager import ModelManager

__all__ = ["ReferenceTranscript", "transcribe_reference", "transcribe_with"]


@dataclass(frozen=True, slots=True)
class ReferenceTranscript:
    text: str
    timed: tuple[TimedText, ...]


def transcribe_reference(engine: SpeechToText, audio: Audio) -> ReferenceTranscript | None:
    """What ``audio`` says, timed word by word when the model times words (else segment by
    segment); None when the model heard nothing."""
    capabilities = engine.capabilities
    heard = (
        audio
        if audio.sample_rate == capabilities.sample_rate
        else resample(audio, capabilities.sample_rate)
    )
    options = TranscribeOptions(word_timestamps=capabilities.word_timestamps)
    segments, _info = engine.transcribe(heard, options)
    texts: list[str] = []
    timed: list[TimedText] = []
    for segment in segments:
        if not segment.text.strip():
            continue
        texts.append(segment.text.strip())
        pieces = [(w.start, w.end, w.word) for w in segment.words or ()] or [
            (segment.start, segment.end, segment.text)
        ]
        timed.extend(
            TimedText(round(start, 3), round(end, 3), text.strip())
            for start, end, text in pieces
            if text.strip()
        )
    if not texts:
        return None
    return ReferenceTranscript(" ".join(texts), tuple(timed))


async def transcribe_with(
    manager: ModelManager, alias: str | None, audio: Audio
) -> tuple[ReferenceTranscript | None, str | None]:
    """The transcript from the served model ``alias`` (leased like any request), and why
    there is none. Busy (429) is raised, so the client tries again; any other failure
    leaves the voice without a transcript, and says why."""
    if alias is None:
        return None, "voice_transcription_model is not set"
    try:
        lease = await manager.acquire(alias, ModelKind.STT)
    except RateLimitError:
        raise
    except BragiError as exc:
        return None, exc.message
    try:
        engine = lease.engine
        if not isinstance(engine, SpeechToText):
            return None, f"model `{alias}` does not transcribe"
        heard = await to_thread.run_sync(transcribe_reference, engine, audio)
        return heard, None if heard else f"model `{alias}` heard no words"
    except BragiError as exc:
        return None, exc.message
    finally:
        await lease.release()
