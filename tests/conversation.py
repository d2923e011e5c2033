"""Conversations with known turn times, made from real recordings of different voices.

The voices: the human reader of ``two_cities.wav``, the one of ``clone-test.wav``, and two
synthetic ones spoken by the starter set's Piper and Kokoro. (``beckett.wav`` is read by a
voice close to two_cities' reader, so it is not used as a second speaker.)
"""

from __future__ import annotations

import io
import itertools
import wave
from dataclasses import dataclass

import numpy as np

from bragi.audio import decode_audio

RATE = 16_000


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float
    end: float


@dataclass(frozen=True)
class Conversation:
    samples: np.ndarray
    turns: list[Turn]

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(t.speaker for t in self.turns))

    def wav(self) -> bytes:
        return wav_bytes(self.samples)


def wav_bytes(samples: np.ndarray) -> bytes:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def load(data: bytes) -> np.ndarray:
    return decode_audio(data, RATE).samples


def clip(samples: np.ndarray, start: float, end: float) -> np.ndarray:
    return samples[int(start * RATE) : int(end * RATE)]


def converse(
    parts: list[tuple[str, np.ndarray]], gap: float = 0.6, overlap: float = 0.0
) -> Conversation:
    """The parts one after another, ``gap`` seconds apart (or overlapping by ``overlap``)."""
    total = sum(len(p) for _, p in parts) + int(gap * RATE) * len(parts)
    out = np.zeros(total, np.float32)
    turns, position = [], 0
    for index, (speaker, part) in enumerate(parts):
        if index and overlap:
            position -= int(overlap * RATE)
        out[position : position + len(part)] += part
        turns.append(Turn(speaker, position / RATE, (position + len(part)) / RATE))
        position += len(part) + (0 if overlap else int(gap * RATE))
    return Conversation(out[:position], turns)


def change_points(turns: list[Turn]) -> list[float]:
    """Where the next speaker starts, for each change of speaker."""
    return [b.start for a, b in itertools.pairwise(turns) if a.speaker != b.speaker]
