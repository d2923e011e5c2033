"""The worker protocol, fuzzed from both ends.

- :class:`~bragi.runners.framing.Channel` reads Hypothesis-made byte streams (frames with
  lying sizes, broken headers, random bytes): it returns frames or raises
  :class:`ChannelClosed` (:class:`MalformedFrame` for bytes that are not a frame),
  and a size that only a prefix claims allocates nothing.
- A real worker process gets well-framed messages with fuzzed headers and payloads: it
  answers each (with an error frame when the message makes no sense) and keeps serving;
  bytes that are not frames end it with a log line and its own exit code.
- The server's side of a worker gets fuzzed replies from an impostor worker
  (``impostor_worker.py``): every one ends in a typed error (503 for a stream out of
  step, 500 for a reply it cannot read) and the next request works.

Seeded (``derandomize``) and bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bragi.backends.protocol import TranscribeOptions
from bragi.errors import BragiError, EngineError, ModelUnavailableError
from bragi.runners import codec
from bragi.runners.framing import (
    MAX_PAYLOAD_BYTES,
    Channel,
    ChannelClosed,
    Frame,
    MalformedFrame,
)
from bragi.runners.process import WorkerProcess, WorkerSpec
from bragi.runners.proxy import WorkerSpeechToText
from bragi.runners.worker_main import EXIT_MALFORMED
from budget import fuzz_settings
from fakes import make_model_dir, sine

EXAMPLES = 150
TESTS = Path(__file__).resolve().parents[1]
PREFIX = struct.Struct(">IQ")
FUZZ_SETTINGS = fuzz_settings(EXAMPLES)


def framed(header: dict[str, Any], payload: bytes = b"") -> bytes:
    encoded = json.dumps(header).encode()
    return PREFIX.pack(len(encoded), len(payload)) + encoded + payload


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
OPS = ("transcribe", "synthesize", "next", "cancel", "voices", "ping", "load", "bogus", "")
headers = st.fixed_dictionaries(
    {"op": st.sampled_from(OPS)},
    optional={
        "stream": st.one_of(st.integers(-2, 5), json_values),
        "sample_rate": st.one_of(st.integers(-1, 96_000), json_values),
        "options": st.one_of(
            st.fixed_dictionaries({}, optional={"task": json_values}), json_values
        ),
        "request": json_values,
        "protocol": st.one_of(st.just(codec.PROTOCOL_VERSION), json_values),
    },
)


# --- the channel -------------------------------------------------------------------


@st.composite
def byte_streams(draw: st.DrawFn) -> bytes:
    """Frames, some with a field of the prefix or a byte of the header changed, or junk."""
    pieces = []
    for _ in range(draw(st.integers(1, 4))):
        payload = draw(st.binary(max_size=64))
        piece = bytearray(framed(draw(headers), payload))
        how = draw(st.sampled_from(("intact", "header-size", "payload-size", "byte", "junk")))
        if how == "header-size":
            piece[0:4] = struct.pack(">I", draw(st.sampled_from((0, 1, 2**24, 2**32 - 1))))
        elif how == "payload-size":
            size = draw(st.sampled_from((0, 1, 2**20, MAX_PAYLOAD_BYTES, 2**64 - 1)))
            piece[4:12] = struct.pack(">Q", size)
        elif how == "byte":
            piece[draw(st.integers(12, len(piece) - 1))] = draw(st.integers(0, 255))
        elif how == "junk":
            piece = bytearray(draw(st.binary(min_size=1, max_size=64)))
        pieces.append(bytes(piece))
    return b"".join(pieces)


def read_all(data: bytes) -> tuple[list[Frame], ChannelClosed]:
    """Frames read from ``data`` sent by a peer that then hangs up, and how reading ended."""
    ours, theirs = socket.socketpair()
    sender = threading.Thread(target=lambda: (theirs.sendall(data), theirs.close()))
    sender.start()
    channel = Channel(ours)
    frames: list[Frame] = []
    try:
        while True:
            frames.append(channel.receive(deadline=time.monotonic() + 10))
    except ChannelClosed as ending:
        return frames, ending
    finally:
        sender.join()
        channel.close()


@given(data=byte_streams())
@FUZZ_SETTINGS
def test_any_bytes_are_read_as_frames_or_a_closed_channel(data: bytes) -> None:
    tracemalloc.start()
    try:
        frames, _ = read_all(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert all(isinstance(frame.header, dict) for frame in frames)
    assert peak < 8 * 1024 * 1024, f"{peak} bytes allocated to read {len(data)}"


def test_a_payload_size_only_the_prefix_claims_allocates_nothing() -> None:
    """Regression (found by this fuzzing): the reader allocated (and zeroed) the whole
    payload a prefix announced, so ten bytes claiming 512 MiB cost 512 MiB."""
    tracemalloc.start()
    try:
        frames, ending = read_all(PREFIX.pack(2, 512 * 1024 * 1024) + b"{}" + b"0123456789")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not frames and str(ending) == "end of stream"
    assert peak < 8 * 1024 * 1024


@pytest.mark.parametrize(
    "header",
    [b"\xff\xfe\xfd", b'{"op": ', b"[" * 200_000, b"[]", b"42", b'"op"'],
    ids=["not-utf8", "cut-json", "nested-200k-deep", "a-list", "a-number", "a-string"],
)
def test_a_header_that_is_no_json_object_is_a_malformed_frame(header: bytes) -> None:
    """Regression (found by this fuzzing): such headers raised JSONDecodeError,
    UnicodeDecodeError or RecursionError out of ``receive``."""
    frames, ending = read_all(PREFIX.pack(len(header), 0) + header)
    assert not frames and isinstance(ending, MalformedFrame)
    assert isinstance(ending, ValueError)  # what the server's exchange catches


def test_a_large_payload_still_arrives_whole() -> None:
    samples = np.arange(3_000_000, dtype="<f4")  # 12 MB: the buffer grows as it arrives
    (frame,), _ = read_all(framed({"op": "chunk"}, samples.tobytes()))
    assert np.array_equal(np.frombuffer(frame.payload, dtype="<f4"), samples)


# --- a real worker, fed fuzzed messages --------------------------------------------


class RawWorker:
    """``python -m bragi.runners.worker_main`` on a socket this test holds."""

    def __init__(self, model_dir: Path, log: Path):
        ours, theirs = socket.socketpair()
        path = os.pathsep.join([str(TESTS / "runners"), str(TESTS), *sys.path])
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bragi.runners.worker_main", "--fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdout=output,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, PYTHONPATH=path),
            )
        theirs.close()
        self.sock = ours
        self.channel = Channel(ours)
        load = {
            "op": "load",
            "protocol": codec.PROTOCOL_VERSION,
            "backend": "script-stt",
            "reference": "childfakes:STT",
            "model_dir": str(model_dir),
            "device": "cpu",
            "options": {},
        }
        assert self.ask(load).op == "loaded"

    def ask(self, header: dict[str, Any], payload: bytes = b"") -> Frame:
        self.channel.send(header, payload, deadline=time.monotonic() + 30)
        return self.channel.receive(deadline=time.monotonic() + 30)

    def close(self) -> None:
        self.channel.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawWorker]:
    root = tmp_path_factory.mktemp("raw-worker")
    live = RawWorker(make_model_dir(root, "script-stt"), root / "worker.log")
    yield live
    live.close()


@given(header=headers, payload=st.binary(max_size=256))
@FUZZ_SETTINGS
def test_a_worker_answers_every_fuzzed_message_and_keeps_serving(
    worker: RawWorker, header: dict[str, Any], payload: bytes
) -> None:
    reply = worker.ask(header, payload)
    known = {"error", "started", "segment", "end", "cancelled", "voices", "pong"}
    assert reply.op in known, reply
    if reply.op == "error":
        assert codec.decode_error(reply.header).message
    assert worker.ask({"op": "ping"}).op == "pong"


def test_a_worker_refuses_a_second_load(worker: RawWorker) -> None:
    """Regression (found by this fuzzing): a second ``load`` replaced the engine without
    closing the first one."""
    again = {"op": "load", "protocol": codec.PROTOCOL_VERSION, "backend": "script-stt"}
    reply = worker.ask(again)
    assert reply.op == "error" and "already loaded" in reply.header["message"]


def test_a_worker_sent_bytes_that_are_no_frame_exits_saying_so(
    tmp_path: Path,
) -> None:
    """Regression (found by this fuzzing): a header that was not JSON ended the worker
    with an uncaught traceback; now it logs why and exits with its own code."""
    live = RawWorker(make_model_dir(tmp_path, "script-stt"), tmp_path / "worker.log")
    try:
        live.sock.sendall(PREFIX.pack(5, 0) + b"\xff{no}")
        assert live.process.wait(30) == EXIT_MALFORMED
    finally:
        live.close()
    log = live.log.read_text()
    assert "malformed frame" in log and "Traceback" not in log


# --- the server's side, answered by an impostor ------------------------------------


@pytest.fixture
def impostor(tmp_path: Path) -> Iterator[tuple[WorkerSpeechToText, Path]]:
    """A worker proxy whose process is ``impostor_worker.py``; replies go in the dir."""
    script = tmp_path / "script"
    script.mkdir()
    python = tmp_path / "python"
    impostor_py = Path(__file__).with_name("impostor_worker.py")
    python.write_text(f'#!/bin/sh\nexec {sys.executable} {impostor_py} "$@"\n')
    python.chmod(0o755)
    spec = WorkerSpec(
        label="impostor",
        python=str(python),
        backend="impostor",
        reference=None,
        model_dir=tmp_path,
        device="cpu",
        options={},
        environment=dict(os.environ, IMPOSTOR_SCRIPT=str(script)),
        timeout=5.0,  # a reply that never comes whole is waited for this long
        load_timeout=60.0,
    )
    worker = WorkerProcess(spec)
    worker.start()
    engine = WorkerSpeechToText(worker)
    yield engine, script
    engine.close()


def reply_file(script: Path) -> Path:
    """The impostor's next reply (it takes them in name order, and deletes each)."""
    return script / f"reply-{time.monotonic_ns():020d}"


GOOD_START = framed({"op": "started", "info": {"language": "en", "duration": 1.0}})
BAD_REPLIES = {
    "not-a-frame": b"HTTP/1.1 200 OK\r\n\r\n",
    "header-not-json": PREFIX.pack(4, 0) + b"\xff\xff\xff\xff",
    "header-nested-deep": PREFIX.pack(100_000, 0) + b"[" * 100_000,
    "payload-size-4-GiB": PREFIX.pack(2, MAX_PAYLOAD_BYTES) + b"{}",
    "started-without-info": framed({"op": "started"}),
    "info-of-the-wrong-kind": framed({"op": "started", "info": [1, 2]}),
    "info-with-unknown-fields": framed({"op": "started", "info": {"bogus": 1}}),
}


@pytest.mark.parametrize("name", sorted(BAD_REPLIES))
def test_a_bad_reply_is_a_typed_error_and_the_next_request_works(
    impostor: tuple[WorkerSpeechToText, Path], name: str
) -> None:
    """Regression (found by this fuzzing): replies whose fields were missing or of the
    wrong kind escaped as KeyError or TypeError (an untyped 500)."""
    engine, script = impostor
    reply_file(script).write_bytes(BAD_REPLIES[name])
    with pytest.raises(BragiError) as raised:
        engine.transcribe(sine(0.2, 16_000), TranscribeOptions())
    assert isinstance(raised.value, ModelUnavailableError | EngineError), raised.value
    reply_file(script).write_bytes(GOOD_START)
    _, info = engine.transcribe(sine(0.2, 16_000), TranscribeOptions())
    assert info.language == "en"


@given(header=st.dictionaries(st.sampled_from(("op", "info", "segment", "x")), json_values))
@fuzz_settings(EXAMPLES // 5)
def test_fuzzed_replies_end_in_a_result_or_a_typed_error(
    impostor: tuple[WorkerSpeechToText, Path], header: dict[str, Any]
) -> None:
    engine, script = impostor
    reply_file(script).write_bytes(framed(header))
    with contextlib.suppress(BragiError):  # a typed error, or a result: nothing else
        engine.transcribe(sine(0.2, 16_000), TranscribeOptions())
