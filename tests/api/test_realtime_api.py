"""The Realtime WebSocket's protocol, through the official openai client and a raw
websockets client, against Bragi's real app with a fake speech-to-text engine.

The turn detection is the real Silero VAD on real speech; the engine is the named fake
(``fake-stt``: any audio becomes " word0 word1 word2"), held by a gate where a test needs
a decode in flight. Every wait is bounded.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import websockets.exceptions
from websockets.sync.client import connect as ws_connect

from appserver import AppServer, fake_settings, serve_app
from bragi.audio import decode_audio
from bragi.config import ModelConfig
from fakes import BrokenSttBackend, FakeSttBackend, FakeTtsBackend, make_model_dir, wait_until
from realtimesupport import RATE, EventPump, connect, pcm16, send_audio, two_utterances
from speech import SpeechSample

MANUAL = {"type": "transcription", "audio": {"input": {"turn_detection": None}}}


def silence(seconds: float, rate: int = RATE) -> bytes:
    return pcm16(np.zeros(int(seconds * rate), np.float32))


def tone(seconds: float, rate: int = RATE) -> bytes:
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    return pcm16((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@contextmanager
def realtime_server(
    tmp_path: Path,
    stt: FakeSttBackend | None = None,
    *,
    whisper: dict[str, Any] | None = None,
    **realtime: Any,
) -> Iterator[AppServer]:
    models = {
        "whisper-1": ModelConfig(
            model=str(make_model_dir(tmp_path, "fake-stt", "whisper")), **(whisper or {})
        ),
        "tts-1": ModelConfig(model=str(make_model_dir(tmp_path, "fake-tts", "tts"))),
    }
    options = {"partial_interval_ms": 100, "max_event_mb": 0.25} | realtime
    settings = fake_settings(tmp_path / "data", models, realtime=options)
    with serve_app(settings, [stt or FakeSttBackend(), FakeTtsBackend()]) as live:
        yield live


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with realtime_server(tmp_path_factory.mktemp("realtime")) as live:
        yield live


def ws_url(server: AppServer, query: str = "intent=transcription") -> str:
    return server.base_url.replace("http://", "ws://") + "/v1/realtime?" + query


def manual(connection: Any, pump: EventPump) -> None:
    connection.session.update(session=MANUAL)
    pump.until("session.updated")


def error_after(connection: Any, pump: EventPump, raw: str | bytes) -> Any:
    connection.send_raw(raw)
    return pump.until("error")[-1].error


def still_open(connection: Any, pump: EventPump) -> None:
    connection.session.update(session={"type": "transcription"})
    assert pump.until(lambda e: e.type in ("session.updated", "error"))[-1].type == (
        "session.updated"
    )


# --- the session ------------------------------------------------------------------


def test_session_created_and_updated_carry_the_full_session(server: AppServer) -> None:
    with connect(server.client()) as (connection, pump):
        created = pump.next()
        assert created.type == "session.created" and created.event_id.startswith("event_")
        session = created.session
        assert session.type == "transcription"
        assert session.audio.input.format.type == "audio/pcm"
        assert session.audio.input.format.rate == 24_000
        assert session.audio.input.transcription.model == "whisper-1"
        vad = session.audio.input.turn_detection
        assert (vad.type, vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms) == (
            "server_vad",
            0.5,
            300,
            500,
        )
        connection.session.update(
            session={
                "type": "transcription",
                "audio": {
                    "input": {
                        "transcription": {"language": "en", "prompt": "Dickens"},
                        "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
                        "noise_reduction": {"type": "near_field"},
                    }
                },
                "include": ["item.input_audio_transcription.logprobs"],
            }
        )
        updated = pump.until("session.updated")[-1].session
        audio_input = updated.audio.input
        assert audio_input.transcription.model == "whisper-1"  # unchanged: not in the update
        assert (audio_input.transcription.language, audio_input.transcription.prompt) == (
            "en",
            "Dickens",
        )
        assert audio_input.turn_detection.type == "semantic_vad"
        assert audio_input.turn_detection.eagerness == "high"
        assert audio_input.noise_reduction.type == "near_field"  # accepted and echoed
        assert updated.include == ["item.input_audio_transcription.logprobs"]
        assert updated.id == session.id


def test_the_beta_client_gets_beta_events(server: AppServer) -> None:
    options = {"websocket_base_url": server.base_url.replace("http", "ws") + "/v1"}
    client = server.client(**options)
    with connect(client, beta=True, model="whisper-1") as (connection, pump):
        created = pump.next()
        assert created.type == "transcription_session.created"
        connection.send(
            {
                "type": "transcription_session.update",
                "session": {
                    "input_audio_format": "g711_ulaw",
                    "input_audio_transcription": {"model": "whisper-1", "language": "en"},
                    "turn_detection": None,
                },
            }
        )
        updated = pump.until("transcription_session.updated")[-1]
        assert updated.session.input_audio_format == "g711_ulaw"
        assert updated.session.turn_detection is None
        connection.send({"type": "input_audio_buffer.append", "audio": b64(bytes(4000))})
        connection.send({"type": "input_audio_buffer.commit"})
        events = pump.until("conversation.item.input_audio_transcription.completed")
        kinds = [event.type for event in events]
        assert "conversation.item.created" in kinds and "conversation.item.added" not in kinds


def test_manual_commits_make_chained_items_with_usage(server: AppServer) -> None:
    with connect(server.client()) as (connection, pump):
        manual(connection, pump)
        items = []
        for seconds in (1.0, 0.5):
            connection.input_audio_buffer.append(audio=b64(tone(seconds)))
            connection.input_audio_buffer.commit()
            events = pump.until("conversation.item.done")
            kinds = [event.type for event in events]
            assert kinds.index("input_audio_buffer.committed") < kinds.index(
                "conversation.item.added"
            )
            committed = next(e for e in events if e.type == "input_audio_buffer.committed")
            completed = next(e for e in events if e.type.endswith("transcription.completed"))
            deltas = [e.delta for e in events if e.type.endswith("transcription.delta")]
            done = events[-1]
            assert completed.item_id == committed.item_id == done.item.id
            assert completed.transcript == "word0 word1 word2" == "".join(deltas)
            assert completed.usage.type == "duration"
            assert completed.usage.seconds == pytest.approx(seconds, abs=0.02)
            assert done.item.content[0].transcript == completed.transcript
            items.append(committed)
        assert items[0].previous_item_id is None
        assert items[1].previous_item_id == items[0].item_id != items[1].item_id
        ids = [event.event_id for event in pump.seen if not isinstance(event, tuple)]
        assert len(ids) == len(set(ids))


def test_partial_text_arrives_before_the_commit(server: AppServer) -> None:
    with connect(server.client()) as (connection, pump):
        manual(connection, pump)
        connection.input_audio_buffer.append(audio=b64(tone(0.6)))
        # Each new piece lets one more partial decode run; two that agree give a delta.
        deltas: list[Any] = []
        for _ in range(20):
            connection.input_audio_buffer.append(audio=b64(tone(0.3)))
            try:
                deltas = pump.until(lambda e: e.type.endswith("delta"), timeout=0.5)
                break
            except AssertionError:
                continue
        assert deltas, "no partial text while audio was still arriving"
        assert deltas[-1].delta == "word0 word1 word2"
        connection.input_audio_buffer.commit()
        events = pump.until(lambda e: e.type.endswith("transcription.completed"))
        assert events[-1].transcript == "word0 word1 word2"
        # Everything was sent as partial text: the final adds nothing.
        assert not any(e.type.endswith("delta") for e in events)


# --- the input audio buffer ----------------------------------------------------------


def test_empty_commits_and_clear(server: AppServer) -> None:
    with connect(server.client()) as (connection, pump):
        manual(connection, pump)
        connection.input_audio_buffer.commit()
        error = pump.until("error")[-1].error
        assert error.code == "input_audio_buffer_commit_empty"
        assert "Expected at least 100ms" in error.message

        connection.input_audio_buffer.append(audio=b64(tone(0.05)))
        connection.input_audio_buffer.commit()
        assert pump.until("error")[-1].error.code == "input_audio_buffer_commit_empty"

        connection.input_audio_buffer.append(audio=b64(tone(0.5)))
        connection.input_audio_buffer.clear()
        pump.until("input_audio_buffer.cleared")
        connection.input_audio_buffer.commit()
        assert pump.until("error")[-1].error.code == "input_audio_buffer_commit_empty"


@pytest.mark.parametrize(
    ("fmt", "rate", "encode"),
    [
        ({"type": "audio/pcmu"}, 8000, "mulaw"),
        ({"type": "audio/pcma"}, 8000, "alaw"),
        ({"type": "audio/pcm", "rate": 16000}, 16000, "pcm"),
    ],
)
def test_g711_and_other_rates_reach_the_engine_as_audio_of_the_right_length(
    tmp_path: Path, fmt: dict[str, Any], rate: int, encode: str
) -> None:
    stt = FakeSttBackend()
    with realtime_server(tmp_path, stt) as server, connect(server.client()) as (connection, pump):
        audio_input = {"format": fmt, "turn_detection": None}
        connection.session.update(
            session={"type": "transcription", "audio": {"input": audio_input}}
        )
        assert pump.until("session.updated")[-1].session.audio.input.format.type == fmt["type"]
        seconds = 1.5
        if encode == "pcm":
            data, duration = tone(seconds, rate), seconds
        else:  # every G.711 byte value, over and over
            data = bytes(range(256)) * int(seconds * rate / 256)
            duration = len(data) / rate
        connection.input_audio_buffer.append(audio=b64(data))
        connection.input_audio_buffer.commit()
        completed = pump.until(lambda e: e.type.endswith("transcription.completed"))[-1]
        assert completed.usage.seconds == pytest.approx(duration, abs=0.02)
        assert stt.calls[-1].duration == pytest.approx(duration, abs=0.02)


def test_manual_buffer_cap_and_a_long_spoken_turn_is_cut(
    tmp_path: Path, speech: dict[str, SpeechSample]
) -> None:
    with realtime_server(tmp_path, max_buffer_seconds=2) as server:
        with connect(server.client()) as (connection, pump):
            manual(connection, pump)
            connection.input_audio_buffer.append(audio=b64(tone(1.5)))
            connection.input_audio_buffer.append(audio=b64(tone(1.0)))
            assert pump.until("error")[-1].error.code == "input_audio_buffer_full"
            connection.input_audio_buffer.commit()
            completed = pump.until(lambda e: e.type.endswith("transcription.completed"))[-1]
            assert completed.usage.seconds == pytest.approx(1.5, abs=0.02)
        with connect(server.client()) as (connection, pump):
            # Speech whose pauses are shorter than the silence that ends a turn, with
            # turns of at most 2 s: cut where they reach 2 s.
            vad = {"type": "server_vad", "silence_duration_ms": 3000}
            connection.session.update(
                session={"type": "transcription", "audio": {"input": {"turn_detection": vad}}}
            )
            pump.until("session.updated")
            samples = decode_audio(speech["beckett"].path.read_bytes(), RATE).samples[: 5 * RATE]
            send_audio(connection, pcm16(samples), pace=0, chunk_ms=200)
            events = pump.until(lambda e: e.type == "input_audio_buffer.committed")
            started = next(e for e in events if e.type == "input_audio_buffer.speech_started")
            stopped = next(e for e in events if e.type == "input_audio_buffer.speech_stopped")
            assert 1900 <= stopped.audio_end_ms - started.audio_start_ms <= 2300
            following = pump.until("input_audio_buffer.speech_started")[-1]
            assert following.audio_start_ms == stopped.audio_end_ms


# --- turn detection on real speech ----------------------------------------------


def test_server_vad_finds_two_utterances_with_their_times(
    server: AppServer, speech: dict[str, SpeechSample]
) -> None:
    utterances = two_utterances(speech)
    with connect(server.client()) as (connection, pump):
        send_audio(connection, utterances.pcm, pace=0)
        events = pump.until(lambda e: e.type == "conversation.item.done", timeout=60)
        events += pump.until(
            lambda e: e.type == "conversation.item.done" and e.item.id != events[-1].item.id,
            timeout=60,
        )
    started = [e for e in events if e.type == "input_audio_buffer.speech_started"]
    stopped = [e for e in events if e.type == "input_audio_buffer.speech_stopped"]
    committed = [e for e in events if e.type == "input_audio_buffer.committed"]
    assert len(started) == len(stopped) == len(committed) == 2
    for index, (start, end) in enumerate(utterances.speech):
        # audio_start_ms: where speech began, less prefix_padding_ms (300 ms)
        assert abs(started[index].audio_start_ms - (start * 1000 - 300)) <= 100
        # audio_end_ms: where speech ended, plus silence_duration_ms (500 ms)
        assert abs(stopped[index].audio_end_ms - (end * 1000 + 500)) <= 150
        assert started[index].item_id == stopped[index].item_id == committed[index].item_id
    assert committed[1].previous_item_id == committed[0].item_id


# --- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "invalid_json"),
        # Regression (fuzzing): Python's json took these, and session.updated then echoed
        # a bare Infinity, which is no JSON a client can parse
        (
            '{"type": "session.update", "session": {"audio": {"input": '
            '{"noise_reduction": {"type": "near_field", "strength": Infinity}}}}}',
            "invalid_json",
        ),
        ('{"type": "input_audio_buffer.commit", "event_id": NaN}', "invalid_json"),
        ("[1, 2]", "invalid_type"),
        ('{"audio": "AAAA"}', "missing_required_parameter"),
        ('{"type": "input_audio_buffer.appendx"}', "invalid_value"),
        ('{"type": "response.create"}', "unsupported_event"),
        ('{"type": "input_audio_buffer.append", "audio": "not base64!"}', "invalid_value"),
        ('{"type": "input_audio_buffer.append", "audio": 5}', "invalid_value"),
        ('{"type": "input_audio_buffer.append"}', "missing_required_parameter"),
        ('{"type": "input_audio_buffer.commit", "extra": 1}', "unknown_parameter"),
        ('{"type": "session.update", "session": 3}', "invalid_type"),
        ('{"type": "session.update", "session": {"type": "realtime"}}', "invalid_value"),
        ('{"type": "session.update", "session": {"foo": 1}}', "unknown_parameter"),
        (
            '{"type": "session.update", "session": {"audio": {"input": {"format": '
            '{"type": "audio/pcm", "rate": 12345}}}}}',
            "invalid_value",
        ),
        (
            '{"type": "session.update", "session": {"audio": {"input": {"transcription": '
            '{"model": "no-such-model"}}}}}',
            "model_not_found",
        ),
        (
            '{"type": "session.update", "session": {"audio": {"input": {"transcription": '
            '{"model": "tts-1"}}}}}',
            "model_kind_mismatch",
        ),
        (
            '{"type": "session.update", "session": {"audio": {"input": {"turn_detection": '
            '{"type": "server_vad", "threshold": 2}}}}}',
            "invalid_value",
        ),
        (b"\x00\x01binary", "invalid_event"),
        (
            '{"type": "input_audio_buffer.append", "audio": "' + "A" * 300_000 + '"}',
            "event_too_large",
        ),
    ],
)
def test_bad_input_gets_an_error_event_and_the_session_stays_open(
    server: AppServer, raw: str | bytes, code: str
) -> None:
    with connect(server.client()) as (connection, pump):
        connection.send_raw(raw)
        error = pump.until("error")[-1].error
        assert error.code == code, error
        assert error.type == "invalid_request_error" and error.message
        still_open(connection, pump)
        session = pump.seen[-1].session
        assert session.audio.input.transcription.model == "whisper-1"  # nothing changed


def test_an_error_names_the_client_event_it_answers(server: AppServer) -> None:
    with connect(server.client()) as (connection, pump):
        connection.send({"type": "input_audio_buffer.commit", "event_id": "my_commit"})
        error = pump.until("error")[-1].error
        assert error.event_id == "my_commit"


# --- connecting ---------------------------------------------------------------------------


def test_conversation_sessions_and_bad_url_models_are_refused_and_closed(
    server: AppServer,
) -> None:
    headers = {"Authorization": f"Bearer {server.user_key}"}
    for query, code, close in [
        ("model=whisper-1", "unsupported_session_type", 1008),
        ("intent=conversation", "unsupported_session_type", 1008),
        ("intent=transcription&model=no-such-model", "model_not_found", 4000),
        ("intent=transcription&model=tts-1", "model_kind_mismatch", 4000),
    ]:
        with ws_connect(ws_url(server, query), additional_headers=headers) as socket_:
            event = json.loads(socket_.recv(timeout=10))
            assert event["type"] == "error" and event["error"]["code"] == code, event
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                socket_.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == close


def test_a_model_in_the_url_is_the_transcription_model(server: AppServer) -> None:
    headers = {"Authorization": f"Bearer {server.user_key}"}
    with ws_connect(
        ws_url(server, "intent=transcription&model=whisper-1"), additional_headers=headers
    ) as s:
        event = json.loads(s.recv(timeout=10))
        assert event["type"] == "session.created"
        assert event["session"]["audio"]["input"]["transcription"]["model"] == "whisper-1"


def test_no_key_or_a_wrong_key_never_reaches_a_session(server: AppServer) -> None:
    for headers in ({}, {"Authorization": "Bearer sk-bragi-wrong"}):
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            ws_connect(ws_url(server), additional_headers=headers)
        response = refused.value.response
        assert response.status_code == 401
        assert json.loads(response.body)["error"]["code"] == "invalid_api_key"
    with (
        pytest.raises(websockets.exceptions.InvalidStatus),
        connect(server.client(api_key="sk-bragi-wrong")),
    ):
        pass


def test_ephemeral_keys_open_sessions_from_a_browser_and_nothing_else(
    server: AppServer,
) -> None:
    secret = server.client().realtime.client_secrets.create(
        expires_after={"anchor": "created_at", "seconds": 60},
        session={"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcmu"}}}},
    )
    assert secret.value.startswith("ek_")
    assert secret.session.type == "transcription"
    now = datetime.now(UTC).timestamp()
    assert now + 50 <= secret.expires_at <= now + 70

    # A browser: the key in the subprotocol beside "realtime", answered with "realtime".
    protocols = ["realtime", f"openai-insecure-api-key.{secret.value}"]
    with ws_connect(ws_url(server), subprotocols=protocols) as browser:  # type: ignore[arg-type]
        assert browser.subprotocol == "realtime"
        created = json.loads(browser.recv(timeout=10))
        assert created["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    # The openai client with the ephemeral key as its api_key.
    with connect(server.client(api_key=secret.value)) as (_connection, pump):
        assert pump.next().type == "session.created"
    # Useless for anything but a realtime session.
    response = server.http(secret.value).get("/v1/models")
    assert response.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        server.client(api_key=secret.value).realtime.client_secrets.create()


def test_an_expired_ephemeral_key_is_refused(tmp_path: Path) -> None:
    class KeyClock:
        now = datetime(2026, 6, 1, tzinfo=UTC)

        def __call__(self) -> datetime:
            return self.now

    clock = KeyClock()
    models = {"whisper-1": ModelConfig(model=str(make_model_dir(tmp_path, "fake-stt")))}
    settings = fake_settings(tmp_path / "data", models)
    with serve_app(settings, [FakeSttBackend()], key_clock=clock) as server:
        secret = server.client().realtime.client_secrets.create(
            expires_after={"anchor": "created_at", "seconds": 10}
        )
        with connect(server.client(api_key=secret.value)) as (_connection, pump):
            assert pump.next().type == "session.created"
        clock.now += timedelta(seconds=11)
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            ws_connect(
                ws_url(server), additional_headers={"Authorization": f"Bearer {secret.value}"}
            )
        assert refused.value.response.status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"expires_after": {"anchor": "created_at", "seconds": 5}}, 400),
        ({"expires_after": {"anchor": "created_at", "seconds": 7201}}, 400),
        ({"session": {"type": "realtime", "model": "gpt-realtime"}}, 400),
        (
            {
                "session": {
                    "type": "transcription",
                    "audio": {"input": {"transcription": {"model": "nope"}}},
                }
            },
            404,
        ),
        ({"unknown": 1}, 400),
    ],
)
def test_client_secrets_validates_what_it_is_asked(
    server: AppServer, body: dict[str, Any], status: int
) -> None:
    response = server.http().post("/v1/realtime/client_secrets", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]


def test_the_beta_rest_call_makes_a_key_too(server: AppServer) -> None:
    response = server.http().post(
        "/v1/realtime/transcription_sessions",
        json={"input_audio_format": "g711_alaw", "client_secret": {"expires_at": {"seconds": 30}}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client_secret"]["value"].startswith("ek_")
    assert body["input_audio_format"] == "g711_alaw"


# --- limits and load ----------------------------------------------------------------------


def test_sessions_beyond_the_cap_are_refused_with_1013(tmp_path: Path) -> None:
    with realtime_server(tmp_path, max_sessions=1) as server:
        with connect(server.client()) as (_first, pump):
            assert pump.next().type == "session.created"
            headers = {"Authorization": f"Bearer {server.user_key}"}
            with ws_connect(ws_url(server), additional_headers=headers) as second:
                event = json.loads(second.recv(timeout=10))
                assert event["error"]["code"] == "rate_limit_exceeded"
                with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                    second.recv(timeout=10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        # The first one's place is free again.
        with connect(server.client()) as (_again, pump):
            assert pump.next().type == "session.created"


def test_a_session_expires(tmp_path: Path) -> None:
    with realtime_server(tmp_path, max_session_minutes=0.01) as server:  # 0.6 s
        with connect(server.client()) as (_connection, pump):
            assert pump.next().type == "session.created"
            error = pump.until("error", timeout=10)[-1].error
            assert error.code == "session_expired"
            assert pump.closed() is None  # closed normally (1000)
        wait_until(lambda: not server.app.state.realtime.sessions, what="the session to go")


def test_a_busy_model_fails_the_turn_and_the_socket_keeps_reading(tmp_path: Path) -> None:
    gate = threading.Event()
    stt = FakeSttBackend(gate=gate)
    limits = {"max_concurrency": 1, "max_queue": 0}
    with realtime_server(tmp_path, stt, whisper=limits, partials=False) as server:
        with connect(server.client()) as (first, one), connect(server.client()) as (second, two):
            for connection, pump in ((first, one), (second, two)):
                manual(connection, pump)
            first.input_audio_buffer.append(audio=b64(tone(0.5)))
            first.input_audio_buffer.commit()
            one.until("conversation.item.added")
            wait_until(lambda: len(stt.calls) == 1, what="the first decode to start")
            # The first turn decodes (held at the gate); its socket still answers.
            still_open(first, one)
            second.input_audio_buffer.append(audio=b64(tone(0.5)))
            second.input_audio_buffer.commit()
            failed = two.until(lambda e: e.type.endswith("transcription.failed"))[-1]
            assert failed.error.code == "rate_limit_exceeded"
            assert failed.error.type == "rate_limit_error"
            server.assert_healthy()  # HTTP is served meanwhile
            gate.set()
            completed = one.until(lambda e: e.type.endswith("transcription.completed"))[-1]
            assert completed.transcript == "word0 word1 word2"
            second.input_audio_buffer.append(audio=b64(tone(0.5)))  # and now the second one
            second.input_audio_buffer.commit()
            two.until(lambda e: e.type.endswith("transcription.completed"))
        metrics = server.metrics()
        assert metrics.value("bragi_realtime_turns_total", outcome="failed") == 1
        assert metrics.value("bragi_realtime_turns_total", outcome="completed") == 2


def test_a_client_that_vanishes_mid_turn_leaves_nothing_behind(tmp_path: Path) -> None:
    gate = threading.Event()
    stt = FakeSttBackend(gate=gate)
    with realtime_server(tmp_path, stt, partials=False) as server:
        model = server.manager.get("whisper-1")
        with connect(server.client()) as (connection, pump):
            manual(connection, pump)
            connection.input_audio_buffer.append(audio=b64(tone(2.0)))
            connection.input_audio_buffer.commit()
            wait_until(lambda: model.in_use == 1, what="the turn's lease")
            connection.input_audio_buffer.append(audio=b64(tone(3.0)))  # buffered, not sent
            # Gone without a close frame, as when a network drops.
            connection._connection.socket.shutdown(socket.SHUT_RDWR)
            connection._connection.socket.close()
            gate.set()
        realtime = server.app.state.realtime
        wait_until(lambda: not realtime.sessions, what="the session to end")
        wait_until(lambda: model.in_use == 0 and model.running == 0, what="the lease back")
        assert stt.calls[-1].done.wait(10)
        metrics = server.metrics()
        assert metrics.value("bragi_realtime_sessions") == 0
        assert metrics.value("bragi_realtime_buffered_seconds") == 0
        server.assert_healthy()


# --- what /v1/models and /metrics say ---------------------------------------------------------


def test_models_say_how_each_gives_partial_text(tmp_path: Path, server: AppServer) -> None:
    models = {m["id"]: m for m in server.http().get("/v1/models").json()["data"]}
    assert models["whisper-1"]["realtime_partials"] == "redecode"
    assert "realtime_partials" not in models["tts-1"]
    with realtime_server(tmp_path, partials=False) as off:
        listed = off.http().get("/v1/models/whisper-1").json()
        assert listed["realtime_partials"] == "none"


def test_without_partials_there_is_one_delta_per_segment_after_the_turn(tmp_path: Path) -> None:
    with realtime_server(tmp_path, partials=False) as server:
        with connect(server.client()) as (connection, pump):
            manual(connection, pump)
            connection.input_audio_buffer.append(audio=b64(tone(1.0)))
            connection.input_audio_buffer.commit()
            events = pump.until(lambda e: e.type.endswith("transcription.completed"))
        deltas = [e.delta for e in events if e.type.endswith("delta")]
        assert deltas == ["word0", " word1", " word2"]
        metrics = server.metrics()
        assert metrics.value("bragi_realtime_sessions_opened_total") == 1
        assert metrics.value("bragi_realtime_audio_seconds_total") == pytest.approx(1.0, abs=0.01)
        assert metrics.value("bragi_audio_seconds_total", model="whisper-1") == pytest.approx(
            1.0, abs=0.01
        )
        assert metrics.value("bragi_realtime_turn_latency_seconds_count") == 1


def test_a_client_that_leaves_while_its_turn_waits_for_the_model_takes_no_decode(
    tmp_path: Path,
) -> None:
    gate = threading.Event()
    stt = FakeSttBackend(gate=gate)
    limits = {"max_concurrency": 1, "max_queue": 1}
    with realtime_server(tmp_path, stt, whisper=limits, partials=False) as server:
        model = server.manager.get("whisper-1")
        with connect(server.client()) as (first, one):
            manual(first, one)
            first.input_audio_buffer.append(audio=b64(tone(0.5)))
            first.input_audio_buffer.commit()
            wait_until(lambda: len(stt.calls) == 1, what="the first decode to start")
            with connect(server.client()) as (second, two):
                manual(second, two)
                second.input_audio_buffer.append(audio=b64(tone(0.5)))
                second.input_audio_buffer.commit()
                wait_until(lambda: model.waiting == 1, what="the second turn to queue")
            # The second client has gone; its turn still waits for the model.
            wait_until(lambda: len(server.app.state.realtime.sessions) == 1, what="it to go")
            gate.set()
            one.until(lambda e: e.type.endswith("transcription.completed"))
        wait_until(lambda: model.in_use == 0 and model.waiting == 0, what="every lease back")
        assert len(stt.calls) == 1  # the queued turn was never decoded


def test_an_engine_that_fails_fails_the_turn_not_the_session(tmp_path: Path) -> None:
    models = {
        "whisper-1": ModelConfig(model=str(make_model_dir(tmp_path, "fake-stt"))),
        "broken": ModelConfig(model=str(make_model_dir(tmp_path, "fake-stt-broken"))),
    }
    settings = fake_settings(tmp_path / "data", models, realtime={"partial_interval_ms": 100})
    backends = [FakeSttBackend(), BrokenSttBackend()]
    with serve_app(settings, backends) as server, connect(server.client()) as (connection, pump):
        broken = {"transcription": {"model": "broken"}, "turn_detection": None}
        connection.session.update(session={"type": "transcription", "audio": {"input": broken}})
        pump.until("session.updated")
        for _ in range(4):  # partial decodes fail too, while audio comes
            connection.input_audio_buffer.append(audio=b64(tone(0.3)))
        connection.input_audio_buffer.commit()
        failed = pump.until(lambda e: e.type.endswith("transcription.failed"))[-1]
        assert failed.error.type == "server_error"
        assert "illegal memory access" in failed.error.message
        # The same session transcribes with another model afterwards.
        connection.session.update(
            session={
                "type": "transcription",
                "audio": {"input": {"transcription": {"model": "whisper-1"}}},
            }
        )
        pump.until("session.updated")
        connection.input_audio_buffer.append(audio=b64(tone(0.5)))
        connection.input_audio_buffer.commit()
        completed = pump.until(lambda e: e.type.endswith("transcription.completed"))[-1]
        assert completed.transcript == "word0 word1 word2"
