"""The Wyoming listener's parts on their own: framing (against the ``wyoming`` package's
own reader and writer), sentences from fragments, PCM, language tags, what zeroconf
announces (and a real announcement on the loopback interface)."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import socket
import uuid
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk
from wyoming.event import Event as WyomingEvent
from wyoming.event import async_read_event, async_write_event

import hassclient
from bragi.backends.registry import BackendRegistry
from bragi.config import Settings
from bragi.errors import ConfigError, PayloadTooLargeError, ProtocolError, UnknownVoiceError
from bragi.metrics import Metrics
from bragi.models.configure import build_manager
from bragi.wyoming.catalog import VoiceEntry, ha_language
from bragi.wyoming.choose import _engine_voice
from bragi.wyoming.connection import Connection, Services
from bragi.wyoming.framing import Event, FrameLimits, encode_event, read_event
from bragi.wyoming.textstream import SentenceBuffer
from bragi.wyoming.utterance import pcm_to_float
from bragi.wyoming.zeroconf import Announcer, announced_address, service_name

LIMITS = FrameLimits(header=1024, data=2048, payload=4096)


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=LIMITS.header)
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def read_all(data: bytes) -> list[Event]:
    reader = reader_of(data)
    events = []
    while (event := await read_event(reader, LIMITS)) is not None:
        events.append(event)
    return events


class _Sink:
    """What ``async_write_event`` needs of a StreamWriter, collecting the bytes."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes) -> None:
        self.buffer.write(data)

    def writelines(self, lines: list[bytes]) -> None:
        for line in lines:
            self.buffer.write(line)

    async def drain(self) -> None:
        pass


# --- framing --------------------------------------------------------------------------


def test_what_the_wyoming_package_writes_is_read() -> None:
    async def written() -> bytes:
        sink = _Sink()
        await async_write_event(Transcribe(language="de").event(), sink)  # type: ignore[arg-type]
        chunk = AudioChunk(rate=16_000, width=2, channels=1, audio=b"\x01\x02" * 160)
        await async_write_event(chunk.event(), sink)  # type: ignore[arg-type]
        await async_write_event(WyomingEvent("describe"), sink)  # type: ignore[arg-type]
        return sink.buffer.getvalue()

    events = asyncio.run(read_all(asyncio.run(written())))
    assert [e.type for e in events] == ["transcribe", "audio-chunk", "describe"]
    assert events[0].data == {"language": "de"}
    assert events[1].data["rate"] == 16_000 and events[1].payload == b"\x01\x02" * 160
    assert events[2].data == {} and events[2].payload == b""


def test_what_bragi_writes_the_wyoming_package_reads() -> None:
    sent = [
        Event("info", {"asr": [], "tts": [], "name": "Brági ü"}),
        Event("audio-chunk", {"rate": 22_050, "width": 2, "channels": 1}, b"\x00\x10" * 512),
        Event("synthesize-stopped"),
    ]

    async def read_back() -> list[WyomingEvent]:
        reader = reader_of(b"".join(encode_event(e) for e in sent))
        return [event for _ in sent if (event := await async_read_event(reader)) is not None]

    got = asyncio.run(read_back())
    assert [(e.type, e.data, e.payload or b"") for e in got] == [
        (e.type, e.data, e.payload) for e in sent
    ]
    header = json.loads(encode_event(sent[2]).split(b"\n")[0])
    assert "data_length" not in header and "payload_length" not in header  # empty: left out


def test_inline_data_and_a_data_block_are_merged() -> None:
    raw = b'{"type": "x", "data": {"a": 1, "b": 2}, "data_length": 8}\n{"b": 3}'
    (event,) = asyncio.run(read_all(raw))
    assert event.data == {"a": 1, "b": 3}


def test_a_stream_that_ends_mid_event_is_the_end() -> None:
    for cut in (b'{"type": "desc', b'{"type": "x", "payload_length": 10}\n12345'):
        assert asyncio.run(read_all(cut)) == []


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"garbage\n", ProtocolError),
        (b"\xff\xfe\n", ProtocolError),
        (b"[1]\n", ProtocolError),
        (b'{"type": ""}\n', ProtocolError),
        (b'{"type": 5}\n', ProtocolError),
        (b'{"type": "x", "data": [1]}\n', ProtocolError),
        (b'{"type": "x", "data_length": "3"}\n', ProtocolError),
        (b'{"type": "x", "payload_length": true}\n', ProtocolError),
        (b'{"type": "x", "data_length": 2}\n[]', ProtocolError),
        (b'{"type": "x", "data_length": 2049}\n', PayloadTooLargeError),
        (b'{"type": "x", "payload_length": 4097}\n', PayloadTooLargeError),
        (b'{"type": "' + b"x" * 2000 + b'"}\n', PayloadTooLargeError),
        (b"x" * 3000, PayloadTooLargeError),  # no newline within the limit
    ],
)
def test_bad_frames_are_refused_before_anything_is_buffered(
    raw: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        asyncio.run(read_all(raw))


def test_a_stalled_payload_is_a_protocol_error_and_a_silent_client_a_timeout() -> None:
    async def stalled(data: bytes) -> None:
        reader = asyncio.StreamReader(limit=LIMITS.header)
        reader.feed_data(data)  # and nothing more, no end
        await read_event(reader, LIMITS, idle=0.05)

    with pytest.raises(ProtocolError, match="stopped arriving"):
        asyncio.run(stalled(b'{"type": "x", "payload_length": 10}\n123'))
    with pytest.raises(TimeoutError):
        asyncio.run(stalled(b""))


def test_a_reset_seen_as_enotconn_after_an_error_still_closes_the_connection(
    tmp_path: Path,
) -> None:
    """Regression (found by tests/fuzz/test_wyoming_fuzz.py at BRAGI_FUZZ_SCALE=6):
    under uvloop a client that resets while Bragi shuts its side down after ``error``
    fails the next read with OSError(ENOTCONN), which is no ConnectionError; it escaped
    the linger after ``error``, so the socket was never closed nor the connection
    counted out (``bragi_wyoming_connections`` stayed up)."""
    settings = Settings(data_dir=tmp_path, models={}, device="cpu", allow_downloads=False)
    metrics = Metrics(build_manager(settings, BackendRegistry([])))
    unused = cast(Any, None)  # catalog and chooser: a malformed header needs neither
    services = Services(settings, unused, unused, unused, metrics, LIMITS)

    async def serve() -> bytes:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        with theirs:
            _, writer = await asyncio.open_connection(sock=ours)
            reader = asyncio.StreamReader(limit=LIMITS.header)
            reader.feed_data(b"not a header\n")
            serving = asyncio.create_task(Connection(reader, writer, services).serve())
            said = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(theirs, 65536), 5)
            # The error is out and Bragi lingers, reading: now the reset, as uvloop reports it.
            reader.set_exception(OSError(errno.ENOTCONN, "Transport endpoint is not connected"))
            await asyncio.wait_for(serving, 5)
            assert metrics.wyoming_connections._value.get() == 0
            assert writer.is_closing()
            return said

    said = asyncio.run(serve())
    header = json.loads(said.split(b"\n", 1)[0])
    assert header["type"] == "error"
    assert b"invalid_event" in said


# --- sentences from fragments ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fragments", "expected"),
    [
        # (each fragment, the sentences it completes)
        (
            ["The weather ", "is sun", "ny. Tomo", "rrow it rains. ", "Bye"],
            [[], [], ["The weather is sunny."], ["Tomorrow it rains."], []],
        ),
        # An abbreviation is not an end; a lowercase word after a period is not a start.
        (
            ["Ask Dr. ", "Smith. ", "It costs 5 vs. ", "six. "],
            [[], ["Ask Dr. Smith."], [], ["It costs 5 vs. six."]],
        ),
        # CJK punctuation needs no space after it.
        (["你好。", "再见"], [["你好。"], []]),
        # A newline ends a piece.
        (["Line one\n", "Line two"], [["Line one"], []]),
    ],
)
def test_sentences_are_handed_out_as_they_complete(
    fragments: list[str], expected: list[list[str]]
) -> None:
    buffer = SentenceBuffer()
    assert [buffer.add(fragment) for fragment in fragments] == expected
    rest = buffer.flush()
    handed_out = [s for done in expected for s in done] + rest
    assert "".join("".join(handed_out).split()) == "".join("".join(fragments).split()), (
        "no text is lost or doubled"
    )


def test_a_long_sentence_is_cut_before_it_ends() -> None:
    buffer = SentenceBuffer()
    first = buffer.add("word " * 40)  # 200 characters, no punctuation yet
    assert first and len(first[0]) <= 100  # the first piece is kept short
    assert buffer.flush()


# --- PCM and language tags -----------------------------------------------------------


def test_pcm_of_every_width_becomes_the_same_float_mono() -> None:
    wave = np.sin(np.linspace(0, 20, 800)).astype(np.float32) * 0.5
    ints16 = np.rint(wave * 32767).astype("<i2")
    ints32 = np.rint(wave * 2147483647).astype("<i4")
    packed24 = ints32.view(np.uint8).reshape(-1, 4)[:, 1:].tobytes()  # the top three bytes
    stereo = np.stack([ints16, np.zeros_like(ints16)], axis=1).tobytes()
    assert np.allclose(pcm_to_float(ints16.tobytes(), 2, 1), wave, atol=1e-4)
    assert np.allclose(pcm_to_float(packed24, 3, 1), wave, atol=1e-6)
    assert np.allclose(pcm_to_float(ints32.tobytes(), 4, 1), wave, atol=1e-7)
    assert np.allclose(pcm_to_float(stereo, 2, 2), wave / 2, atol=1e-4)  # channels averaged
    assert len(pcm_to_float(ints16.tobytes() + b"\x01", 2, 1)) == 800  # a partial frame


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("en-US", "en_US"), ("en-us", "en_US"), ("pt_BR", "pt_BR"), ("ja", "ja"), ("EN", "en")],
)
def test_languages_are_written_as_home_assistant_compares_them(tag: str, expected: str) -> None:
    assert ha_language(tag) == expected


# --- zeroconf ----------------------------------------------------------------------------


def test_the_announced_address_is_never_unspecified_link_local_or_loopback_unless_asked() -> None:
    detected = announced_address("0.0.0.0", None)
    assert detected is None or detected not in {"0.0.0.0", "127.0.0.1"}
    assert announced_address("127.0.0.1", None) is None  # other machines cannot reach it
    assert announced_address("localhost", None) is None
    assert announced_address("192.168.1.20", None) == "192.168.1.20"
    assert announced_address("0.0.0.0", "10.0.0.5") == "10.0.0.5"
    assert announced_address("0.0.0.0", "127.0.0.1") == "127.0.0.1"  # asked for: same host
    for wrong in ("0.0.0.0", "169.254.3.4", "fe80::1", "not-an-ip"):
        with pytest.raises(ConfigError):
            announced_address("0.0.0.0", wrong)


def test_service_names_are_one_dns_label() -> None:
    assert service_name("living.room") == "living-room"
    assert len(service_name("x" * 100)) == 63
    assert service_name(None).startswith("bragi-")


@pytest.mark.skipif(
    not hassclient.loopback_multicast(), reason="no multicast on the loopback interface"
)
def test_the_announcement_is_found_and_withdrawn() -> None:
    """A real mDNS registration and lookup, kept on the loopback interface."""
    name = f"bragi-test-{uuid.uuid4().hex[:8]}"

    async def announce_and_browse() -> tuple[object, object]:
        announcer = Announcer(name, "127.0.0.1", 10399)
        await announcer.start()
        try:
            found = await hassclient.discover(name)
        finally:
            await announcer.stop()
        return found, await hassclient.discover(name, timeout=1.0)

    found, after = asyncio.run(announce_and_browse())
    assert found == (["127.0.0.1"], 10399)
    assert after is None, "the announcement is withdrawn when Bragi stops"


def test_a_speaker_named_by_an_odd_digit_is_an_unknown_speaker() -> None:
    """Regression (found by tests/fuzz/test_wyoming_fuzz.py): ``speaker`` "\u00b2" passed
    ``str.isdigit`` and then ``int`` raised ValueError, an ``internal_error`` for the
    client; a number too long for ``int`` did the same."""
    entry = VoiceEntry("multi/m", "multi", "m", "m (multi)", ("en_US",), ("alice", "bob"))
    assert _engine_voice(entry, "1") == "m:bob"
    assert _engine_voice(entry, "alice") == "m:alice"
    for odd in ("\u00b2", "\u0661", "1" * 5000, "2", "-1", ""):
        with pytest.raises(UnknownVoiceError):
            _engine_voice(entry, odd)
