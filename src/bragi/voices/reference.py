"""Checking a cloned voice's reference recording, and the rules for voice names.

A reference is only useful to a cloning engine if it is real, audible speech of a
sensible length, so the upload is decoded with Bragi's own decoder (anything FFmpeg
reads) to mono at :data:`STORED_SAMPLE_RATE` and refused with a 400 when it is not
audio, too short, too long or (nearly) silent. Engines resample the stored reference
to whatever rate they need (XTTS takes 22.05 kHz, F5-TTS 24 kHz).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from bragi.audio import OUTPUT_SAMPLE_RATE, Audio, decode_audio
from bragi.errors import AudioTooLongError, EmptyAudioError, InvalidRequestError

__all__ = [
    "ID_PREFIX",
    "MAX_NAME_LENGTH",
    "MAX_TRANSCRIPT_LENGTH",
    "SOUND_LEVEL_DBFS",
    "STORED_SAMPLE_RATE",
    "ReferenceLimits",
    "check_name",
    "check_transcript",
    "decode_reference",
    "sounding_seconds",
]

#: Rate references are stored at: the rate Bragi speaks at, and as much as any
#: current cloning engine uses (the FLAC writer encodes at this rate).
STORED_SAMPLE_RATE = OUTPUT_SAMPLE_RATE
#: Every stored voice's id starts with this (OpenAI's custom voices look the same).
ID_PREFIX = "voice_"
MAX_NAME_LENGTH = 64
MAX_TRANSCRIPT_LENGTH = 2000
#: A 20 ms frame counts as sound when its RMS level is above this. Speech sits around
#: -20 to -35 dBFS even in quiet recordings; room noise and hiss stay well below.
SOUND_LEVEL_DBFS = -50.0
_FRAME_SECONDS = 0.02

# Letters, digits, '.', '_' and '-', starting with a letter or digit: safe in a URL
# path, a shell and a JSON config, and never mistaken for an option or a path.
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME_LENGTH - 1}}}")


@dataclass(frozen=True, slots=True)
class ReferenceLimits:
    """How long a reference recording may be, in seconds (``voice_*_seconds``)."""

    min_seconds: float = 1.0
    max_seconds: float = 60.0


def check_name(name: str, reserved: Collection[str] = ()) -> str:
    """``name`` if it may name a cloned voice; a 400 saying why not otherwise.

    ``reserved`` are the built-in voice names (engine voices, OpenAI names, configured
    mappings): a cloned voice may not share one, because built-in names win when a
    request is resolved and the cloned voice could never be reached by its name.
    """
    if not _NAME.fullmatch(name):
        raise InvalidRequestError(
            f"Invalid voice name {name!r}: use 1 to {MAX_NAME_LENGTH} letters, digits, '.', "
            "'_' or '-', starting with a letter or digit.",
            param="name",
            code="invalid_voice_name",
        )
    if name.lower().startswith(ID_PREFIX):
        raise InvalidRequestError(
            f"Invalid voice name {name!r}: names starting with '{ID_PREFIX}' are voice ids.",
            param="name",
            code="invalid_voice_name",
        )
    folded = name.casefold()
    if any(folded == other.casefold() for other in reserved):
        raise InvalidRequestError(
            f"The name {name!r} is a built-in voice; choose another name for a cloned voice.",
            param="name",
            code="voice_name_reserved",
        )
    return name


def check_transcript(transcript: str | None) -> str | None:
    """The transcript stripped, None when blank; a 400 when it is too long."""
    if transcript is None or not transcript.strip():
        return None
    if len(transcript) > MAX_TRANSCRIPT_LENGTH:
        raise InvalidRequestError(
            f"The transcript is longer than {MAX_TRANSCRIPT_LENGTH} characters.",
            param="transcript",
        )
    return transcript.strip()


def sounding_seconds(audio: Audio) -> float:
    """Seconds of ``audio`` in 20 ms frames louder than :data:`SOUND_LEVEL_DBFS`."""
    frame = max(1, round(_FRAME_SECONDS * audio.sample_rate))
    whole = len(audio.samples) // frame * frame
    if whole == 0:
        return 0.0
    frames = audio.samples[:whole].reshape(-1, frame).astype(np.float64)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    threshold = 10.0 ** (SOUND_LEVEL_DBFS / 20.0)
    return int(np.count_nonzero(rms > threshold)) * frame / audio.sample_rate


def decode_reference(data: bytes, limits: ReferenceLimits, param: str = "audio_sample") -> Audio:
    """The upload as mono float32 at :data:`STORED_SAMPLE_RATE`, or a 400 saying why not."""
    try:
        # The decoder stops as soon as the audio passes the limit, so a small,
        # highly compressed file cannot make it decode hours.
        audio = decode_audio(data, STORED_SAMPLE_RATE, limits.max_seconds)
    except AudioTooLongError:
        raise _too_long(limits, param) from None
    except InvalidRequestError as exc:  # not audio, empty, digital silence
        exc.param = param
        raise
    if audio.duration > limits.max_seconds:
        raise _too_long(limits, param)
    if audio.duration < limits.min_seconds:
        raise InvalidRequestError(
            f"The reference recording is {audio.duration:.2f} s long; a cloned voice needs "
            f"at least {limits.min_seconds:g} s (voice_min_seconds).",
            param=param,
            code="audio_too_short",
        )
    sound = sounding_seconds(audio)
    if sound < limits.min_seconds:
        raise EmptyAudioError(
            f"The reference recording is nearly silent: it holds {sound:.2f} s above "
            f"{SOUND_LEVEL_DBFS:g} dBFS, and a cloned voice needs at least "
            f"{limits.min_seconds:g} s of speech.",
            param=param,
        )
    return audio


def _too_long(limits: ReferenceLimits, param: str) -> AudioTooLongError:
    return AudioTooLongError(
        f"The reference recording is longer than {limits.max_seconds:g} s "
        "(voice_max_seconds); send a shorter clip of clear speech.",
        param=param,
    )
