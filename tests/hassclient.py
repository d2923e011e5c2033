"""Home Assistant's Wyoming client, replayed with the ``wyoming`` package's own client.

Event for event what Home Assistant 2026.2.3 does (``components/wyoming/{data,stt,tts}.py``,
``tts/__init__.py``; see ../shared/docs/reference/wyoming.md, section 3): a new connection
per request; ``describe`` under a one-second timeout, skipping other events until
``info``; speech to text as ``transcribe`` (language only), ``audio-start``, 10 ms
``audio-chunk`` events of 16 kHz mono, ``audio-stop``, then reading until ``transcript``;
text to speech through the streaming path whenever the server supports it
(``synthesize-start``, a ``synthesize-chunk`` per text delta, the ``synthesize`` copy of
the whole text, ``synthesize-stop``, written while reading until ``synthesize-stopped``),
else one ``synthesize`` read until the first ``audio-stop``.

:func:`home_assistant_view` applies the checks Home Assistant makes on an ``info``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

__all__ = [
    "HaView",
    "SpeechReply",
    "TranscriptReply",
    "describe",
    "discover",
    "home_assistant_view",
    "loopback_multicast",
    "synthesize_once",
    "synthesize_streaming",
    "transcribe",
]

#: Home Assistant's timeout per describe attempt (``data.py`` ``_INFO_TIMEOUT``).
DESCRIBE_TIMEOUT = 1.0
#: Upper bound on any one reply in these tests (Home Assistant's pipeline allows 300 s).
REPLY_TIMEOUT = 120.0


async def describe(host: str, port: int) -> tuple[Info, float]:
    """The server's ``info`` as Home Assistant loads it, and the seconds it took."""
    started = time.perf_counter()
    async with AsyncTcpClient(host, port) as client, asyncio.timeout(DESCRIBE_TIMEOUT):
        await client.write_event(Describe().event())
        while True:
            event = await client.read_event()
            assert event is not None, "connection closed before info"
            if Info.is_type(event.type):
                return Info.from_event(event), time.perf_counter() - started


@dataclass
class TranscriptReply:
    text: str | None  # None: no transcript (Home Assistant reports an error)
    events: list[Event]
    after_stop: float  # seconds from audio-stop to the transcript (or the end)

    def types(self) -> list[str]:
        return [event.type for event in self.events]


async def transcribe(
    host: str,
    port: int,
    pcm: bytes,
    *,
    rate: int = 16_000,
    width: int = 2,
    channels: int = 1,
    language: str | None = "en",
    name: str | None = None,
    chunk_seconds: float = 0.01,
    until: str = "transcript",
) -> TranscriptReply:
    """Send ``pcm`` in Home Assistant's order and read until ``until`` (``transcript``,
    as Home Assistant does, or ``transcript-stop``, as streaming clients do) or an
    ``error``."""
    frame = width * channels
    step = max(frame, round(rate * chunk_seconds) * frame)
    async with AsyncTcpClient(host, port) as client, asyncio.timeout(REPLY_TIMEOUT):
        await client.write_event(Transcribe(name=name, language=language).event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        for start in range(0, len(pcm), step):
            chunk = AudioChunk(
                rate=rate, width=width, channels=channels, audio=pcm[start : start + step]
            )
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        stopped = time.perf_counter()
        events: list[Event] = []
        text = None
        while (event := await client.read_event()) is not None:
            events.append(event)
            if Transcript.is_type(event.type):
                text = Transcript.from_event(event).text
            if event.type in (until, "error"):
                break
        return TranscriptReply(text, events, time.perf_counter() - stopped)


@dataclass
class SpeechReply:
    events: list[Event] = field(default_factory=list)
    first_audio: float | None = None  # seconds from the first request event
    total: float = 0.0

    def types(self) -> list[str]:
        return [event.type for event in self.events]

    def formats(self) -> set[tuple[int, int, int]]:
        """Every (rate, width, channels) of an audio-start or audio-chunk."""
        return {
            (e.data["rate"], e.data["width"], e.data["channels"])
            for e in self.events
            if e.type in ("audio-start", "audio-chunk")
        }

    @property
    def pcm(self) -> bytes:
        return b"".join(e.payload or b"" for e in self.events if e.type == "audio-chunk")

    @property
    def seconds(self) -> float:
        start = next(e for e in self.events if e.type == "audio-start")
        return len(self.pcm) / (start.data["width"] * start.data["channels"]) / start.data["rate"]

    @property
    def error(self) -> dict[str, str] | None:
        return next((e.data for e in self.events if e.type == "error"), None)


def _voice(name: str | None, speaker: str | None) -> SynthesizeVoice | None:
    return SynthesizeVoice(name=name, speaker=speaker) if name is not None else None


async def _read_speech(
    client: AsyncTcpClient, reply: SpeechReply, started: float, until: str
) -> None:
    while (event := await client.read_event()) is not None:
        reply.events.append(event)
        if event.type == "audio-chunk" and reply.first_audio is None:
            reply.first_audio = time.perf_counter() - started
        if event.type in (until, "error"):
            break
    reply.total = time.perf_counter() - started


async def synthesize_streaming(
    host: str,
    port: int,
    fragments: Sequence[str],
    *,
    voice: str | None = None,
    speaker: str | None = None,
    pause: float = 0.0,
    before_stop: asyncio.Event | None = None,
) -> SpeechReply:
    """Home Assistant's streaming path: the text as ``fragments`` (``pause`` seconds
    apart), written while the reply is read. With ``before_stop``, ``synthesize-stop``
    waits until it is set (a test holds the end of the text back)."""
    reply = SpeechReply()
    async with AsyncTcpClient(host, port) as client, asyncio.timeout(REPLY_TIMEOUT):
        started = time.perf_counter()
        reader = asyncio.create_task(_read_speech(client, reply, started, "synthesize-stopped"))
        await client.write_event(SynthesizeStart(voice=_voice(voice, speaker)).event())
        for fragment in fragments:
            await client.write_event(SynthesizeChunk(text=fragment).event())
            if pause:
                await asyncio.sleep(pause)
        full = Synthesize(text="".join(fragments), voice=_voice(voice, speaker))
        await client.write_event(full.event())
        if before_stop is not None:
            await before_stop.wait()
        await client.write_event(SynthesizeStop().event())
        await reader
    return reply


async def synthesize_once(
    host: str, port: int, text: str, *, voice: str | None = None, speaker: str | None = None
) -> SpeechReply:
    """Home Assistant's one-shot path: ``synthesize``, read until the first ``audio-stop``."""
    reply = SpeechReply()
    async with AsyncTcpClient(host, port) as client, asyncio.timeout(REPLY_TIMEOUT):
        started = time.perf_counter()
        await client.write_event(Synthesize(text=text, voice=_voice(voice, speaker)).event())
        await _read_speech(client, reply, started, "audio-stop")
    return reply


@dataclass
class HaView:
    """What Home Assistant makes of an ``info``: its entities and their choices."""

    stt_name: str | None
    stt_languages: set[str]
    tts_name: str | None
    tts_voices: dict[str, list[tuple[str, str]]]  # language ─▶ [(voice_id, shown name)]
    tts_streaming: bool


def home_assistant_view(info: Info) -> HaView:
    """Apply Home Assistant's checks: it refuses a server with no installed service, loads
    no STT/TTS platform for an installed satellite, uses ``asr[0]`` and the first installed
    TTS program, and takes only installed models' languages and installed voices."""
    assert not (info.satellite and info.satellite.installed), "a satellite hides STT and TTS"
    installed = [p.name for p in (*info.asr, *info.tts) if p.installed]
    assert installed, "Home Assistant aborts: no_services"
    stt_name, stt_languages = None, set()
    if any(p.installed for p in info.asr):
        program = info.asr[0]
        stt_name = program.name
        for model in program.models:
            if model.installed:
                stt_languages.update(model.languages)
    tts_name, voices, streaming = None, defaultdict(list), False
    program = next((p for p in info.tts if p.installed), None)
    if program is not None:
        tts_name = program.name
        streaming = bool(program.supports_synthesize_streaming)
        for voice in program.voices:
            if voice.installed:
                for language in voice.languages:
                    voices[language].append((voice.name, voice.description or voice.name))
        for language in voices:
            voices[language].sort(key=lambda pair: pair[1])
    return HaView(stt_name, stt_languages, tts_name, dict(voices), streaming)


def loopback_multicast() -> bool:
    """Whether this machine lets a socket join the mDNS group on the loopback interface
    (where the tests announce, so nothing reaches the real network)."""
    membership = socket.inet_aton("224.0.0.251") + socket.inet_aton("127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        except OSError:
            return False
    return True


async def discover(name: str, timeout: float = 10.0) -> tuple[list[str], int] | None:
    """The addresses and port of ``<name>._wyoming._tcp.local.``, looked up as Home
    Assistant's zeroconf does (on the loopback interface only); None if not announced."""
    from zeroconf.asyncio import AsyncZeroconf

    browser = AsyncZeroconf(interfaces=["127.0.0.1"])
    try:
        kind = "_wyoming._tcp.local."
        found = await browser.async_get_service_info(
            kind, f"{name}.{kind}", timeout=int(timeout * 1000)
        )
        return (
            None
            if found is None or found.port is None
            else (
                found.parsed_addresses(),
                found.port,
            )
        )
    finally:
        await browser.async_close()
