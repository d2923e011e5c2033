"""The Wyoming listener, fuzzed: Hypothesis-made byte streams to the real listener in
Bragi's app (``serve_app``, fake engines), one connection per case.

A case is a few pieces: well-framed events of every known type with fuzzed data
(``audio-chunk`` with lying rate/width/channels, ``transcribe`` with odd languages and
model names, ``synthesize`` with odd voices and speakers), unknown events, broken header
lines (not JSON, not an object, nested past any parser's depth, lying or negative
``data_length``/``payload_length``), in any order; then the client half-closes, stays
silent (a header line that never ends included), or leaves mid-payload. Every
connection must end (an ``error`` event as its last event, or a plain close) within a
bound, never with ``internal_error``; afterwards no connection or lease is left, and a
fresh connection's ``describe`` and a real ``transcribe`` work.

Seeded (``derandomize``) and bounded (:data:`EXAMPLES`; ``BRAGI_FUZZ_SCALE`` for more).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from wyoming.event import read_event

import hassclient
from appserver import AppServer, fake_settings, serve_app
from bragi.config import ModelConfig, WyomingSettings
from budget import fuzz_settings
from fakes import (
    FakeCloningTtsBackend,
    FakeMultiSpeakerTtsBackend,
    FakeSttBackend,
    FakeTtsBackend,
    make_model_dir,
    sine,
    wait_until,
)
from livesupport import free_port

#: Connections per run: about 15 s on two cores.
EXAMPLES = 120
HOST = "127.0.0.1"
#: A silent client is closed after this long (a line that never ends included).
IDLE_TIMEOUT = 0.3
#: Longest one case may take to be answered and closed: far over the idle timeout.
CASE_TIMEOUT = 15.0
#: Codes an error event may carry here; ``internal_error`` is a bug found.
EXPECTED_CODES = {
    "invalid_event",
    "payload_too_large",
    "audio_too_long",
    "idle_timeout",
    "model_not_found",
    "model_kind_mismatch",
    "voice_not_found",
    "unsupported",
    "invalid_value",
    "rate_limit_exceeded",
}
ALIASES = ("stt", "tts", "clone", "multi", "bragi")
VOICES = ("tts/af_alloy", "af_alloy", "alloy", "clone/bf_emma", "multi/multi", "multi")
#: A quarter second of tone, as 16 kHz 16-bit mono PCM.
PCM = (sine(0.25, 16_000).samples * 32767).astype(np.int16).tobytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("wyoming-fuzz")
    models = {
        "stt": ModelConfig(model=str(make_model_dir(root, "fake-stt"))),
        "tts": ModelConfig(model=str(make_model_dir(root, "fake-tts"))),
        "clone": ModelConfig(model=str(make_model_dir(root, "fake-clone"))),
        "multi": ModelConfig(model=str(make_model_dir(root, "fake-multi"))),
    }
    wyoming = WyomingSettings(enabled=True, port=free_port(), idle_timeout=IDLE_TIMEOUT)
    settings = fake_settings(root / "data", models, wyoming=wyoming, upload_limit_mb=0.25)
    backends = [
        FakeSttBackend(),
        FakeTtsBackend(),
        FakeCloningTtsBackend(),
        FakeMultiSpeakerTtsBackend(),
    ]
    with serve_app(settings, backends) as live:
        yield live


# --- what a case sends -------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
#: Odd strings: unicode digits and letters, separators, control characters, paths.
odd_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["", " ", "\x00", "\u00b2", "\u0661", "../../etc/passwd", "a/b/c", "en-US", "EN_us"]
    ),
)
numbers = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 5, 8, 16_000, 44_100, 384_001, -1, 2**31, 2**63, 10**30]),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    json_values,
)
audio_format = st.fixed_dictionaries(
    {}, optional={"rate": numbers, "width": numbers, "channels": numbers, "timestamp": numbers}
)
voice = st.one_of(
    st.none(),
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(
                st.sampled_from(["tts/af_alloy", "af_alloy", "alloy", "clone/bf_emma", "nobody"]),
                odd_text,
                json_values,
            ),
            "language": st.one_of(st.sampled_from(["en_GB", "de", "en-US"]), odd_text),
            "speaker": st.one_of(
                st.sampled_from(["alice", "1", "2"]), odd_text, st.integers(-2, 5)
            ),
        },
    ),
)
text = st.one_of(st.sampled_from(["Hello there. ", "One. Two", ""]), odd_text, json_values)
DATA: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "describe": st.just({}),
    "ping": st.fixed_dictionaries({}, optional={"text": json_values}),
    "transcribe": st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(st.sampled_from(ALIASES), odd_text, json_values),
            "language": st.one_of(st.sampled_from(["en", "de-DE", "zz", "klingon"]), odd_text),
        },
    ),
    "audio-start": audio_format,
    "audio-chunk": audio_format,
    "audio-stop": st.fixed_dictionaries({}, optional={"timestamp": numbers}),
    "synthesize": st.fixed_dictionaries(
        {"text": text},
        optional={
            "voice": voice,
            "text_format": st.one_of(st.sampled_from(["text", "ssml"]), odd_text),
        },
    ),
    "synthesize-start": st.fixed_dictionaries(
        {}, optional={"voice": voice, "text_format": st.one_of(st.just("text"), odd_text)}
    ),
    "synthesize-chunk": st.fixed_dictionaries({}, optional={"text": text}),
    "synthesize-stop": st.just({}),
    "select-program": st.fixed_dictionaries({}, optional={"name": odd_text}),
}
EVENT_TYPES = sorted(DATA)


#: Data a well-behaved client sends with each event; a case changes some of it.
VALID: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "transcribe": st.fixed_dictionaries(
        {"language": st.sampled_from(["en", "de"])},
        optional={"name": st.sampled_from(ALIASES)},
    ),
    "audio-start": st.just({"rate": 16_000, "width": 2, "channels": 1}),
    "audio-chunk": st.just({"rate": 16_000, "width": 2, "channels": 1}),
    "synthesize": st.fixed_dictionaries(
        {"text": st.sampled_from(["Hello there.", "One. Two."])},
        optional={"voice": st.fixed_dictionaries({"name": st.sampled_from(VOICES)})},
    ),
    "synthesize-start": st.fixed_dictionaries(
        {}, optional={"voice": st.fixed_dictionaries({"name": st.sampled_from(VOICES)})}
    ),
    "synthesize-chunk": st.fixed_dictionaries({"text": st.sampled_from(["Hi. ", "There", ""])}),
}
#: Requests as a well-behaved client orders them.
FLOWS = (
    ("transcribe", "audio-start", "audio-chunk", "audio-chunk", "audio-stop"),
    ("audio-start", "audio-chunk", "audio-stop"),
    ("synthesize",),
    ("synthesize-start", "synthesize-chunk", "synthesize-chunk", "synthesize", "synthesize-stop"),
    ("describe",),
)


@st.composite
def event_data(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """Valid data, or valid data with some fields fuzzed, or wholly fuzzed data."""
    fuzzed = DATA.get(kind, st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    valid = VALID.get(kind)
    if valid is None or draw(st.integers(0, 7)) == 0:
        return draw(fuzzed)
    data = dict(draw(valid))
    if draw(st.integers(0, 3)) == 0:
        data.update(draw(fuzzed))
    return data


def frame(draw: st.DrawFn, kind: str, data: dict[str, Any]) -> bytes:
    """``kind`` as a well-framed event: data inline or in its own block, maybe a payload
    (audio chunks: PCM of any length)."""
    payload = b""
    if kind == "audio-chunk":
        payload = draw(st.one_of(st.binary(max_size=2048), st.just(PCM)))
    elif draw(st.integers(0, 9)) == 0:
        payload = draw(st.binary(max_size=256))
    header: dict[str, Any] = {"type": kind}
    body = b""
    if data and draw(st.booleans()):
        header["data"] = data
    elif data:
        body = json.dumps(data).encode()
        header["data_length"] = len(body)
    if payload:
        header["payload_length"] = len(payload)
    return json.dumps(header).encode() + b"\n" + body + payload


@st.composite
def events(draw: st.DrawFn) -> bytes:
    """One well-framed event of any type, known or not."""
    kind = draw(st.one_of(st.sampled_from(EVENT_TYPES), st.text(min_size=1, max_size=12)))
    return frame(draw, kind, draw(event_data(kind)))


@st.composite
def flows(draw: st.DrawFn) -> list[bytes]:
    """A request in a well-behaved client's order, then some events dropped, repeated
    or moved (out of order), some data fuzzed."""
    kinds = list(draw(st.sampled_from(FLOWS)))
    for _ in range(draw(st.integers(0, 2))):
        if not kinds:
            break
        index = draw(st.integers(0, len(kinds) - 1))
        how = draw(st.sampled_from(("drop", "repeat", "move")))
        kind = kinds.pop(index)
        if how != "drop":
            kinds.insert(draw(st.integers(0, len(kinds))), kind)
            if how == "repeat":
                kinds.insert(index, kind)
    return [frame(draw, kind, draw(event_data(kind))) for kind in kinds]


@st.composite
def broken_lines(draw: st.DrawFn) -> bytes:
    """A header line that is not a usable header."""
    how = draw(
        st.sampled_from(
            ("bytes", "not-object", "deep", "length", "no-type", "data-not-object", "long")
        )
    )
    if how == "bytes":
        return draw(st.binary(max_size=200)).replace(b"\n", b"") + b"\n"
    if how == "not-object":
        return (
            json.dumps(draw(st.one_of(st.lists(json_values), st.text(), st.integers()))).encode()
            + b"\n"
        )
    if how == "deep":  # deeper than the JSON parser's recursion limit
        depth = draw(st.sampled_from((1_000, 5_000, 20_000)))
        opener = draw(st.sampled_from((b"[", b'{"a":')))
        return b'{"type": "describe", "data": ' + opener * depth + b"\n"
    if how == "length":
        key = draw(st.sampled_from(("data_length", "payload_length")))
        value = draw(
            st.one_of(
                st.sampled_from([-1, -(2**63), 2**20 + 1, 2**23 + 1, 2**64, 10**100]),
                st.floats(),
                st.text(max_size=4),
                st.booleans(),
            )
        )
        return json.dumps({"type": "audio-chunk", key: value}).encode() + b"\n"
    if how == "no-type":
        return json.dumps({"type": draw(json_values), "data": {}}).encode() + b"\n"
    if how == "data-not-object":
        return json.dumps({"type": "describe", "data": draw(json_values)}).encode() + b"\n"
    return b'{"type": "describe", "pad": "' + b"x" * 70_000 + b'"}\n'


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    """An event that promises more data or payload than is sent (the case ends after)."""
    promised = draw(st.integers(1, 4096))
    sent = draw(st.integers(0, promised - 1))
    key = draw(st.sampled_from(("data_length", "payload_length")))
    header = {
        "type": draw(st.sampled_from(("audio-chunk", "synthesize", "describe"))),
        key: promised,
    }
    return json.dumps(header).encode() + b"\n" + draw(st.binary(min_size=sent, max_size=sent))


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[bytes], str]:
    """The pieces a client sends, and how it ends: ``half-close`` (it is done),
    ``silent`` (it waits; the idle timeout ends it) or ``leave`` (it closes at once)."""
    parts = st.lists(st.one_of(flows(), flows(), st.lists(events(), max_size=3)), max_size=3)
    pieces = [piece for part in draw(parts) for piece in part]
    for _ in range(draw(st.integers(0, 2)) // 2):  # now and then a broken line among them
        pieces.insert(draw(st.integers(0, len(pieces))), draw(broken_lines()))
    if draw(st.integers(0, 5)) == 0:
        pieces.append(draw(truncated()))
    if draw(st.integers(0, 7)) == 0:  # a line that never ends
        pieces.append(b'{"type": "describe"' + draw(st.binary(max_size=64)).replace(b"\n", b""))
    ending = draw(st.sampled_from(("half-close", "half-close", "half-close", "silent", "leave")))
    return pieces, ending


# --- running a case ----------------------------------------------------------------


def run_case(port: int, pieces: list[bytes], ending: str) -> list[Any]:
    """Send the pieces; every event the server sends until it closes (bounded)."""
    sock = socket.create_connection((HOST, port), timeout=CASE_TIMEOUT)
    received: list[Any] = []
    try:
        try:
            for piece in pieces:
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it closed on an earlier piece; what it said is still to be read
        if ending == "leave":
            return received
        if ending == "half-close":
            sock.shutdown(socket.SHUT_WR)
        with sock.makefile("rb") as stream:
            try:
                while (event := read_event(stream)) is not None:
                    received.append(event)
            except ConnectionResetError:
                pass  # a close; what came before it was read
            except TimeoutError:
                sent = [piece[:80] for piece in pieces]
                raise AssertionError(f"no close within {CASE_TIMEOUT} s: {sent}") from None
    finally:
        sock.close()
    return received


def check_events(received: list[Any], pieces: list[bytes]) -> None:
    sent = [piece[:120] for piece in pieces]
    for index, event in enumerate(received):
        if event.type != "error":
            continue
        assert index == len(received) - 1, f"events after an error: {received}, sent {sent}"
        data = event.data or {}
        assert isinstance(data.get("text"), str) and data["text"], (data, sent)
        assert data.get("code") in EXPECTED_CODES, (data, sent)


def assert_nothing_left(server: AppServer) -> None:
    wait_until(
        lambda: (
            server.metrics().value("bragi_wyoming_connections") == 0
            and all(model.in_use == 0 for model in server.manager.models())
        ),
        CASE_TIMEOUT,
        "every Wyoming connection to close and every lease to go",
    )


def assert_still_serves(server: AppServer) -> None:
    port = server.settings.wyoming.port
    info, _ = asyncio.run(hassclient.describe(HOST, port))
    assert [m.name for m in info.asr[0].models] == ["stt"]
    pcm = (sine(0.5, 16_000).samples * 32767).astype(np.int16).tobytes()
    reply = asyncio.run(hassclient.transcribe(HOST, port, pcm))
    assert reply.text == "word0 word1 word2", reply.events


def test_fuzzed_byte_streams_end_in_an_error_or_a_close(server: AppServer) -> None:
    port = server.settings.wyoming.port
    ran = 0

    @given(case=cases())
    @fuzz_settings(EXAMPLES)
    def fuzz(case: tuple[list[bytes], str]) -> None:
        nonlocal ran
        pieces, ending = case
        check_events(run_case(port, pieces, ending), pieces)
        assert_nothing_left(server)
        assert_still_serves(server)
        ran += 1

    fuzz()
    assert ran >= EXAMPLES
    assert_still_serves(server)
    assert_nothing_left(server)
