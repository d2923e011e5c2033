"""The Realtime WebSocket, fuzzed: Hypothesis-made client events to ``/v1/realtime`` on
Bragi's real app (``serve_app``, the fake speech-to-text engine, the real Silero VAD),
one session per case, sent with a raw ``websockets`` client.

A case is a few messages: known events with fuzzed fields (appends of odd lengths and
base64 that is not base64, ``session.update`` and ``transcription_session.update`` of
fuzzed shapes, formats switched between appends, commits of empty buffers, clears),
conversation and unknown event types, text that is not JSON, binary frames, events
over ``max_event_mb``. Then the client asks for its session once more and reads to the
answer, or closes (or drops the socket) mid-turn. Every error must be an OpenAI-shaped
``error`` event with a code (never ``server_error``), the session must stay open (a
frame beyond twice ``max_event_mb`` may close it 1009, as documented), and after the
socket closes no session or lease is left; afterwards the official client still gets a
transcript.

Seeded (``derandomize``) and bounded (:data:`EXAMPLES`; ``BRAGI_FUZZ_SCALE`` for more).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from appserver import AppServer, fake_settings, serve_app
from bragi.config import ModelConfig
from budget import fuzz_settings
from fakes import FakeSttBackend, FakeTtsBackend, make_model_dir, wait_until
from realtimesupport import connect

#: Sessions per run: about 5 s on two cores.
EXAMPLES = 150
MAX_EVENT_MB = 0.0625  # 64 KiB: "huge" stays cheap; frames over 128 KiB close the socket
CASE_TIMEOUT = 20.0
ERROR_FIELDS = {"type", "code", "message", "param", "event_id"}
#: Server events a transcription session may send.
SERVER_EVENTS = {
    "session.created",
    "session.updated",
    "transcription_session.updated",
    "error",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "conversation.item.added",
    "conversation.item.created",
    "conversation.item.done",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
}
#: Events are handled in order, so the answer to this one (an error that names it:
#: commits take no fields) comes after the answers to everything sent before it.
SENTINEL = "fuzz_sentinel"
SENTINEL_EVENT = json.dumps(
    {"type": "input_audio_buffer.commit", "event_id": SENTINEL, "fuzz_sentinel": True}
)
#: What a message is, weighted: mostly events a session acts on.
KINDS = (
    *("append", "append", "append", "commit", "clear", "update", "update", "beta-update"),
    *("other-type", "json", "not-json", "binary", "huge"),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root: Path = tmp_path_factory.mktemp("realtime-fuzz")
    models = {
        "whisper-1": ModelConfig(model=str(make_model_dir(root, "fake-stt", "whisper"))),
        "tts-1": ModelConfig(model=str(make_model_dir(root, "fake-tts", "tts"))),
    }
    realtime = {"partial_interval_ms": 100, "max_event_mb": MAX_EVENT_MB, "max_buffer_seconds": 5}
    settings = fake_settings(root / "data", models, realtime=realtime)
    with serve_app(settings, [FakeSttBackend(), FakeTtsBackend()]) as live:
        yield live


# --- what a case sends -------------------------------------------------------------

#: Floats include NaN and the infinities: Python's json writes them as bare words.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
odd_text = st.one_of(
    st.text(max_size=20), st.sampled_from(["", "en", "EN", "english", "xx", "\x00", "\u0661"])
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The value, or (one time in eight) something of another shape."""
    return st.integers(0, 7).flatmap(lambda pick: json_values if pick == 0 else strategy)


pcm_format = st.fixed_dictionaries(
    {"type": maybe(st.sampled_from(["audio/pcm", "audio/pcmu", "audio/pcma", "pcm16"]))},
    optional={"rate": maybe(st.sampled_from([24_000, 8_000, 16_000, 48_000, 12_345, 0, -1]))},
)
transcription = st.fixed_dictionaries(
    {},
    optional={
        "model": maybe(st.sampled_from(["whisper-1", "tts-1", "nope", ""])),
        "language": maybe(odd_text),
        "prompt": maybe(st.text(max_size=30)),
        "languages": maybe(st.lists(odd_text, max_size=3)),
        "keywords": maybe(st.lists(st.text(max_size=10), max_size=3)),
        "delay": maybe(st.sampled_from(["minimal", "low", "medium", "high", "xhigh", "now"])),
    },
)
turn_detection = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"type": maybe(st.sampled_from(["server_vad", "semantic_vad", "push_to_talk"]))},
        optional={
            "threshold": maybe(st.floats()),
            "prefix_padding_ms": maybe(st.integers(-10, 20_000)),
            "silence_duration_ms": maybe(st.integers(-10, 20_000)),
            "eagerness": maybe(st.sampled_from(["low", "medium", "high", "auto", "max"])),
            "idle_timeout_ms": maybe(st.integers(-10, 2**64)),
            "create_response": json_values,
        },
    ),
)
noise_reduction = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "type": maybe(st.sampled_from(["near_field", "far_field"])),
            "strength": maybe(st.floats()),
        },
    ),
)
ga_session = st.fixed_dictionaries(
    {},
    optional={
        "type": maybe(st.sampled_from(["transcription", "realtime"])),
        "audio": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "input": maybe(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "format": maybe(pcm_format),
                                "transcription": maybe(transcription),
                                "turn_detection": maybe(turn_detection),
                                "noise_reduction": maybe(noise_reduction),
                            },
                        )
                    )
                },
            )
        ),
        "include": maybe(st.lists(st.just("item.input_audio_transcription.logprobs"), max_size=2)),
    },
)
beta_session = st.fixed_dictionaries(
    {},
    optional={
        "input_audio_format": maybe(st.sampled_from(["pcm16", "g711_ulaw", "g711_alaw", "opus"])),
        "input_audio_transcription": maybe(transcription),
        "turn_detection": maybe(turn_detection),
        "input_audio_noise_reduction": maybe(noise_reduction),
        "modalities": maybe(st.lists(st.sampled_from(["text", "audio"]), max_size=2)),
    },
)


@st.composite
def audio(draw: st.DrawFn) -> Any:
    """Base64 of bytes of any length (a tone, noise, odd byte counts), or not base64."""
    how = draw(st.sampled_from(("tone", "noise", "noise", "not-base64", "other")))
    if how == "tone":
        seconds = draw(st.sampled_from((0.05, 0.3, 1.2)))
        t = np.arange(int(seconds * 24_000), dtype=np.float32) / 24_000
        pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes()
        return base64.b64encode(pcm[: len(pcm) - draw(st.integers(0, 1))]).decode()
    if how == "noise":
        return base64.b64encode(draw(st.binary(max_size=4001))).decode()
    if how == "not-base64":
        return draw(st.sampled_from(["not base64!", "AAA", "A===", "====", "\u00e9\u00e9"]))
    return draw(json_values)


@dataclass(frozen=True)
class Huge:
    """An append of ``size`` base64 characters, built only when sent (so a failing
    case prints short)."""

    size: int

    def text(self) -> str:
        return json.dumps(event("input_audio_buffer.append", audio="A" * self.size))


Message = str | bytes | Huge


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


@st.composite
def events(draw: st.DrawFn) -> Message:
    """One message: a client event (fuzzed fields, sometimes an extra one or an
    ``event_id``), JSON of another shape, text that is not JSON, or a binary frame."""
    how = draw(st.sampled_from(KINDS))
    message: Any
    if how == "append":
        message = event("input_audio_buffer.append", audio=draw(audio()))
    elif how == "commit":
        message = event("input_audio_buffer.commit")
    elif how == "clear":
        message = event("input_audio_buffer.clear")
    elif how in ("update", "beta-update"):
        kind = draw(st.sampled_from(("session.update", "transcription_session.update")))
        shape = ga_session if how == "update" else beta_session
        message = event(kind, session=draw(maybe(shape)))
    elif how == "other-type":
        kind = draw(
            st.one_of(st.sampled_from(["response.create", "conversation.item.create"]), odd_text)
        )
        message = event(kind, **draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    elif how == "json":
        message = draw(json_values)
    elif how == "not-json":
        return draw(st.text(max_size=40).filter(lambda text: not _is_json(text)))
    elif how == "binary":
        return draw(st.binary(max_size=64))
    else:  # over max_event_mb, and now and then over twice that (the socket closes 1009)
        return Huge(draw(st.sampled_from((70_000, 70_000, 140_000))))
    if isinstance(message, dict):
        if draw(st.integers(0, 4)) == 0:
            message["event_id"] = draw(json_values)
        if draw(st.integers(0, 9)) == 0:
            message[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return json.dumps(message)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@st.composite
def manual_turn(draw: st.DrawFn) -> list[Message]:
    """Turn detection off, a format, audio in pieces of any length, a commit: a turn
    that is transcribed (or an empty one that is refused)."""
    fmt = draw(st.sampled_from(({"type": "audio/pcm", "rate": 24_000}, {"type": "audio/pcmu"})))
    fmt = draw(maybe(st.just(fmt)))
    update = {"audio": {"input": {"turn_detection": None, "format": fmt}}}
    messages: list[Message] = [json.dumps(event("session.update", session=update))]
    messages += [
        json.dumps(event("input_audio_buffer.append", audio=draw(audio())))
        for _ in range(draw(st.integers(0, 3)))
    ]
    messages.append(json.dumps(event("input_audio_buffer.commit")))
    return messages


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Message], str]:
    """Messages, and how the client ends: it asks for its session and reads to the
    answer (``ask``), or closes the socket at once (``close``) or drops it (``drop``)."""
    parts = st.lists(
        st.one_of(manual_turn(), st.lists(events(), max_size=4)), min_size=1, max_size=3
    )
    messages = [message for part in draw(parts) for message in part]
    return messages, draw(st.sampled_from(("ask", "ask", "ask", "close", "drop")))


# --- running a case ----------------------------------------------------------------


def open_session(server: AppServer) -> ClientConnection:
    url = server.base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    headers = {"Authorization": f"Bearer {server.user_key}"}
    sock = ws_connect(url, additional_headers=headers, open_timeout=CASE_TIMEOUT, max_size=None)
    created = json.loads(sock.recv(timeout=CASE_TIMEOUT))
    assert created["type"] == "session.created", created
    return sock


def surely_bad(message: Message) -> bool:
    """Whether the message cannot be a usable client event (so it must get an error)."""
    if isinstance(message, Huge | bytes) or len(message) > MAX_EVENT_MB * 2**20:
        return True
    try:
        value = json.loads(message)
    except ValueError:
        return True
    known = ("input_audio_buffer.", "session.update", "transcription_session.update")
    return not (isinstance(value, dict) and str(value.get("type", "")).startswith(known))


def _not_json(constant: str) -> None:
    raise AssertionError(f"the server wrote {constant}, which JSON has not")


def strict_json(text: str | bytes) -> Any:
    """JSON as every client parses it: NaN and Infinity are not JSON."""
    return json.loads(text, parse_constant=_not_json)


def run_case(server: AppServer, messages: list[Message], ending: str) -> None:
    sock = open_session(server)
    sent = [m if isinstance(m, Huge) else m[:100] for m in messages]
    try:
        closed_by_server: ConnectionClosed | None = None
        try:
            for message in messages:
                sock.send(message.text() if isinstance(message, Huge) else message)
            if ending == "drop":  # gone without a close frame, as when a network drops
                sock.socket.shutdown(socket.SHUT_RDWR)
                return
            if ending == "close":
                return
            sock.send(SENTINEL_EVENT)
        except ConnectionClosed as exc:
            closed_by_server = exc
        received: list[dict[str, Any]] = []
        try:
            while True:
                reply = strict_json(sock.recv(timeout=CASE_TIMEOUT))
                received.append(reply)
                if reply["type"] == "error" and reply["error"]["event_id"] == SENTINEL:
                    break
        except TimeoutError:
            raise AssertionError(f"no answer within {CASE_TIMEOUT} s to {sent}") from None
        except ConnectionClosed as exc:
            closed_by_server = exc
        check_events(received, messages, closed_by_server)
    finally:
        sock.close()


def check_events(
    received: list[dict[str, Any]], messages: list[Message], closed: ConnectionClosed | None
) -> None:
    sent = [m if isinstance(m, Huge) else m[:100] for m in messages]
    for reply in received:
        assert reply["type"] in SERVER_EVENTS, (reply, sent)
        assert isinstance(reply.get("event_id"), str), (reply, sent)
        if reply["type"] == "error":
            error = reply["error"]
            assert set(error) == ERROR_FIELDS, (error, sent)
            assert error["type"] == "invalid_request_error", (error, sent)
            assert isinstance(error["code"], str) and error["code"], (error, sent)
            assert isinstance(error["message"], str) and error["message"], (error, sent)
    if closed is not None:  # only a frame over twice max_event_mb may close the session
        huge = any(isinstance(m, Huge) and m.size > 2 * MAX_EVENT_MB * 2**20 for m in messages)
        assert huge and closed.rcvd is not None and closed.rcvd.code == 1009, (closed, sent)
        return
    errors = sum(reply["type"] == "error" for reply in received) - 1  # less the sentinel's
    assert errors >= sum(map(surely_bad, messages)), (received, sent)
    assert received[-1]["error"]["code"] == "unknown_parameter", (received[-1], sent)


def assert_nothing_left(server: AppServer) -> None:
    realtime = server.app.state.realtime
    wait_until(
        lambda: (
            not realtime.sessions and all(model.in_use == 0 for model in server.manager.models())
        ),
        CASE_TIMEOUT,
        "every realtime session to end and every lease to go",
    )


def assert_still_serves(server: AppServer) -> None:
    """The official client: a manual turn of tone, committed, transcribed."""
    with connect(server.client()) as (connection, pump):
        manual = {"type": "transcription", "audio": {"input": {"turn_detection": None}}}
        connection.session.update(session=manual)
        pump.until("session.updated")
        t = np.arange(24_000, dtype=np.float32) / 24_000
        pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes()
        connection.input_audio_buffer.append(audio=base64.b64encode(pcm).decode())
        connection.input_audio_buffer.commit()
        done = pump.until(lambda e: e.type.endswith("transcription.completed"))[-1]
        assert done.transcript == "word0 word1 word2"


def test_fuzzed_events_get_openai_errors_and_leave_nothing(
    server: AppServer, caplog: pytest.LogCaptureFixture
) -> None:
    ran = 0

    @given(case=cases())
    @fuzz_settings(EXAMPLES)
    def fuzz(case: tuple[list[Message], str]) -> None:
        nonlocal ran
        run_case(server, *case)
        assert_nothing_left(server)
        ran += 1

    with caplog.at_level(logging.ERROR, logger="bragi"):
        fuzz()
    assert ran >= EXAMPLES
    failures = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("bragi") and r.levelno >= logging.ERROR
    ]
    assert not failures, failures
    assert_still_serves(server)
    assert_nothing_left(server)
