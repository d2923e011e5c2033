"""Timed Wyoming requests, in Home Assistant's event order, with the ``wyoming`` package's
own client (one connection per request, as Home Assistant opens them)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

__all__ = ["describes", "speech", "synthesize_once", "synthesize_streaming", "transcribe"]

HOST = "127.0.0.1"
#: Home Assistant's chunk: 10 ms of 16 kHz 16-bit mono
CHUNK_BYTES = 320
TIMEOUT = 300.0


async def _describe(port: int) -> bool:
    try:
        async with AsyncTcpClient(HOST, port) as client, asyncio.timeout(1.0):
            await client.write_event(Describe().event())
            while (event := await client.read_event()) is not None:
                if event.type == "info":
                    return True
    except (OSError, TimeoutError):
        pass
    return False


def describes(port: int) -> bool:
    """Whether a Wyoming server on ``port`` answers ``describe`` within Home Assistant's
    one second."""
    return asyncio.run(_describe(port))


async def _transcribe(port: int, pcm: bytes) -> tuple[float, str]:
    async with AsyncTcpClient(HOST, port) as client, asyncio.timeout(TIMEOUT):
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16_000, width=2, channels=1).event())
        for start in range(0, len(pcm), CHUNK_BYTES):
            chunk = pcm[start : start + CHUNK_BYTES]
            await client.write_event(AudioChunk(16_000, 2, 1, chunk).event())
        await client.write_event(AudioStop().event())
        stopped = time.perf_counter()
        while (event := await client.read_event()) is not None:
            if Transcript.is_type(event.type):
                return time.perf_counter() - stopped, Transcript.from_event(event).text
            if event.type == "error":
                raise RuntimeError(f"Wyoming error: {event.data}")
    raise RuntimeError("the connection closed before a transcript")


def transcribe(port: int, pcm: bytes) -> tuple[float, str]:
    """16 kHz mono PCM sent as Home Assistant sends it: (seconds from writing
    ``audio-stop`` to reading ``transcript``, the text)."""
    return asyncio.run(_transcribe(port, pcm))


async def _read_audio(client: AsyncTcpClient, started: float, end: str) -> tuple[float, float]:
    first = None
    while (event := await client.read_event()) is not None:
        if event.type == "audio-chunk" and first is None:
            first = time.perf_counter() - started
        elif event.type == "error":
            raise RuntimeError(f"Wyoming error: {event.data}")
        elif event.type == end:
            if first is None:
                raise RuntimeError("no audio")
            return first, time.perf_counter() - started
    raise RuntimeError(f"the connection closed before {end}")


async def _once(port: int, text: str, voice: str) -> tuple[float, float]:
    async with AsyncTcpClient(HOST, port) as client, asyncio.timeout(TIMEOUT):
        started = time.perf_counter()
        await client.write_event(Synthesize(text, SynthesizeVoice(voice)).event())
        return await _read_audio(client, started, "audio-stop")


def synthesize_once(port: int, text: str, voice: str) -> tuple[float, float]:
    """``synthesize``: (seconds to the first audio chunk, to ``audio-stop``)."""
    return asyncio.run(_once(port, text, voice))


async def _streaming(port: int, fragments: Sequence[str], voice: str) -> tuple[float, float]:
    async with AsyncTcpClient(HOST, port) as client, asyncio.timeout(TIMEOUT):
        started = time.perf_counter()
        reading = asyncio.create_task(_read_audio(client, started, "synthesize-stopped"))
        await client.write_event(SynthesizeStart(SynthesizeVoice(voice)).event())
        for fragment in fragments:
            await client.write_event(SynthesizeChunk(fragment).event())
        await client.write_event(Synthesize("".join(fragments), SynthesizeVoice(voice)).event())
        await client.write_event(SynthesizeStop().event())
        return await reading


def synthesize_streaming(port: int, fragments: Sequence[str], voice: str) -> tuple[float, float]:
    """Home Assistant's streaming path (``synthesize-start``, the fragments, the
    ``synthesize`` copy, ``synthesize-stop``): (seconds to the first audio chunk, to
    ``synthesize-stopped``)."""
    return asyncio.run(_streaming(port, fragments, voice))


async def _speech(port: int, text: str, voice: str) -> tuple[int, bytes]:
    async with AsyncTcpClient(HOST, port) as client, asyncio.timeout(TIMEOUT):
        await client.write_event(Synthesize(text, SynthesizeVoice(voice)).event())
        rate, pieces = 0, []
        while (event := await client.read_event()) is not None:
            if event.type == "audio-chunk":
                rate = event.data["rate"]
                pieces.append(event.payload or b"")
            elif event.type == "audio-stop":
                return rate, b"".join(pieces)
    raise RuntimeError("the connection closed before audio-stop")


def speech(port: int, text: str, voice: str) -> tuple[int, bytes]:
    """``text`` spoken (one-shot): (sample rate, 16-bit mono PCM)."""
    return asyncio.run(_speech(port, text, voice))
