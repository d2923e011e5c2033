"""The Wyoming listener in Bragi's real app, against fake engines: the protocol's framing
and every kind of bad input, model and voice choice, limits, leases and metrics.

Clients are the ``wyoming`` package's own (replaying Home Assistant, ``hassclient``) and
raw sockets for what no well-behaved client sends. Requests are held in flight by the
fakes' gates; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from wyoming.event import read_event

import hassclient
from appserver import AppServer, fake_settings, serve_app
from bragi.backends.protocol import SttCapabilities
from bragi.config import ModelConfig, WyomingSettings
from bragi.models.served import ModelState
from fakes import (
    FakeCloningTtsBackend,
    FakeSttBackend,
    FakeSttEngine,
    FakeTtsBackend,
    SlowLoadingBackend,
    make_model_dir,
    sine,
    wait_until,
    wav_of,
)
from livesupport import free_port

HOST = "127.0.0.1"
UPLOAD_LIMIT_MB = 0.5


def pcm16(seconds: float, rate: int = 16_000, channels: int = 1) -> bytes:
    """A tone as 16-bit PCM, channels interleaved."""
    samples = (sine(seconds, rate).samples * 32767).astype("<i2")
    return np.repeat(samples, channels).tobytes()


@pytest.fixture(scope="module")
def stt_gate() -> threading.Event:
    gate = threading.Event()
    gate.set()
    return gate


@pytest.fixture(scope="module")
def tts_gate() -> threading.Event:
    gate = threading.Event()
    gate.set()
    return gate


@pytest.fixture(scope="module")
def stt(stt_gate: threading.Event) -> FakeSttBackend:
    both = SttCapabilities(languages=frozenset({"en", "de"}))
    return FakeSttBackend(gate=stt_gate, capabilities=both)


@pytest.fixture(scope="module")
def tts(tts_gate: threading.Event) -> FakeTtsBackend:
    return FakeTtsBackend(gate=tts_gate, sample_rate=22_050)


@pytest.fixture(scope="module")
def cloner() -> FakeCloningTtsBackend:
    return FakeCloningTtsBackend()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    stt: FakeSttBackend,
    tts: FakeTtsBackend,
    cloner: FakeCloningTtsBackend,
) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("wyoming")

    def model(backend: str, alias: str, **fields: Any) -> ModelConfig:
        return ModelConfig(model=str(make_model_dir(root, backend, alias)), **fields)

    models = {
        "english": model("fake-stt", "english", max_concurrency=1, max_queue=0),
        "german": model("fake-stt", "german"),
        "tts": model("fake-tts", "tts"),
        "clone": model("fake-clone", "clone"),
    }
    wyoming = WyomingSettings(
        enabled=True,
        port=free_port(),
        stt_model="english",
        stt_models={"de": "german"},
        tts_voices={"en_GB": "tts/bf_emma"},
    )
    settings = fake_settings(
        root / "data", models, wyoming=wyoming, upload_limit_mb=UPLOAD_LIMIT_MB
    )
    with serve_app(settings, [stt, tts, cloner]) as live:
        yield live


def port(server: AppServer) -> int:
    return server.settings.wyoming.port


def engine_of(server: AppServer, alias: str) -> FakeSttEngine:
    engine = server.manager.get(alias).engine
    assert isinstance(engine, FakeSttEngine)
    return engine


def assert_nothing_left(server: AppServer) -> None:
    """No lease held, no request counted as running, no Wyoming connection open."""
    wait_until(
        lambda: server.metrics().value("bragi_wyoming_connections") == 0,
        what="every Wyoming connection to close",
    )
    for model in server.manager.models():
        assert (model.in_use, model.running, model.waiting) == (0, 0, 0), model.alias


class Raw:
    """A raw socket client, for what no well-behaved client sends."""

    def __init__(self, server: AppServer):
        self.sock = socket.create_connection((HOST, port(server)), timeout=30)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def event(self, kind: str, data: dict[str, Any] | None = None, payload: bytes = b"") -> None:
        header: dict[str, Any] = {"type": kind}
        body = json.dumps(data).encode() if data else b""
        if body:
            header["data_length"] = len(body)
        if payload:
            header["payload_length"] = len(payload)
        self.send(json.dumps(header).encode() + b"\n" + body + payload)

    def read(self) -> Any:
        """The next event (the ``wyoming`` package's own reader); None at EOF."""
        return read_event(self.file)

    def read_until(self, kind: str) -> list[Any]:
        events = []
        while (event := self.read()) is not None:
            events.append(event)
            if event.type in (kind, "error"):
                break
        return events

    def closed(self) -> bool:
        return self.read() is None

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# --- describe -------------------------------------------------------------------------


def test_describe_answers_within_a_second_while_a_model_loads(tmp_path: Path) -> None:
    slow = SlowLoadingBackend()
    models = {
        "slow": ModelConfig(model=str(make_model_dir(tmp_path, "fake-slow")), preload=True),
    }
    wyoming = WyomingSettings(enabled=True, port=free_port())
    settings = fake_settings(tmp_path / "data", models, wyoming=wyoming)
    with serve_app(settings, [slow]) as live:
        assert slow.load_started.wait(10), "the preload started"
        assert live.manager.get("slow").state is ModelState.LOADING
        info, seconds = asyncio.run(hassclient.describe(HOST, wyoming.port))
        assert seconds < hassclient.DESCRIBE_TIMEOUT
        assert [m.name for m in info.asr[0].models] == ["slow"]
        assert info.asr[0].models[0].installed is True  # on disk; loading is not missing

        async def command_during_load() -> hassclient.TranscriptReply:
            request = asyncio.create_task(hassclient.transcribe(HOST, wyoming.port, pcm16(1)))
            await asyncio.sleep(0.2)
            assert not request.done(), "it waits for the load, like an HTTP request"
            slow.load_gate.set()
            return await request

        reply = asyncio.run(command_during_load())
        assert reply.text == "word0 word1"
        assert slow.loads == 1
        assert live.manager.get("slow").state is ModelState.LOADED


def test_info_passes_home_assistants_checks(server: AppServer) -> None:
    # Fake models are in no catalog: their languages are known once they are loaded.
    asyncio.run(hassclient.transcribe(HOST, port(server), pcm16(0.5)))
    info, _ = asyncio.run(hassclient.describe(HOST, port(server)))
    view = hassclient.home_assistant_view(info)
    assert view.stt_name == view.tts_name == "bragi"
    assert info.asr[0].models[0].languages == ["de", "en"]
    assert view.stt_languages == {"en", "de"}
    assert [m.name for m in info.asr[0].models] == ["english", "german"]  # the default first
    names = {voice.name: voice for voice in info.tts[0].voices}
    assert {"tts/af_alloy", "tts/am_echo", "tts/bf_emma", "clone/bf_emma"} <= names.keys()
    assert names["tts/bf_emma"].languages == ["en_GB"]
    assert names["tts/af_alloy"].description == "af_alloy (tts, female)"
    assert view.tts_streaming and info.asr[0].supports_transcript_streaming


# --- speech to text ------------------------------------------------------------------


def test_a_command_in_home_assistants_order_streams_its_transcript(server: AppServer) -> None:
    reply = asyncio.run(
        hassclient.transcribe(HOST, port(server), pcm16(1.5), until="transcript-stop")
    )
    assert reply.types() == [
        "transcript-start",
        "transcript-chunk",
        "transcript-chunk",
        "transcript-chunk",
        "transcript",
        "transcript-stop",
    ]
    assert [e.data["text"] for e in reply.events[1:4]] == ["word0", " word1", " word2"]
    assert reply.events[4].data == {"text": "word0 word1 word2", "language": "en"}
    call = engine_of(server, "english").calls[-1]
    assert call.duration == pytest.approx(1.5, abs=0.01)
    assert call.options.language == "en"
    metrics = server.metrics()
    labels = {"route": "wyoming/transcribe", "model": "english", "status": "200"}
    assert metrics.value("bragi_requests_total", **labels) >= 1
    assert metrics.value("bragi_audio_seconds_total", model="english", direction="in") >= 1.5


def test_the_language_map_chooses_the_model(server: AppServer) -> None:
    def run(**request: Any) -> hassclient.TranscriptReply:
        return asyncio.run(hassclient.transcribe(HOST, port(server), pcm16(0.5), **request))

    assert run(language="de").text == "word0 word1 word2"
    assert engine_of(server, "german").calls[-1].options.language == "de"
    assert run(language="de-DE").events[-1].data["language"] == "de"
    before = len(engine_of(server, "german").calls)
    assert run(language="en").text == "word0 word1 word2"  # unmapped: the default model
    assert len(engine_of(server, "german").calls) == before
    assert run(language="en", name="german").text == "word0 word1 word2"  # named: that one
    assert len(engine_of(server, "german").calls) == before + 1
    assert run(language="de", name="bragi").text == "word0 word1 word2"  # the program's name
    assert len(engine_of(server, "german").calls) == before + 2

    for request, code in [
        ({"name": "nonexistent"}, "model_not_found"),
        ({"name": "tts"}, "model_kind_mismatch"),
        ({"language": "klingon"}, "unsupported"),
    ]:
        reply = run(**request)
        assert reply.text is None and reply.types() == ["error"], request
        assert reply.events[0].data["code"] == code


def test_any_rate_width_and_channel_count_is_heard(server: AppServer) -> None:
    stereo = pcm16(2.0, rate=44_100, channels=2)
    reply = asyncio.run(hassclient.transcribe(HOST, port(server), stereo, rate=44_100, channels=2))
    assert reply.text == "word0 word1 word2"
    assert engine_of(server, "english").calls[-1].duration == pytest.approx(2.0, abs=0.01)
    wide = (sine(1.0, 48_000).samples * 2**31 * 0.99).astype("<i4").tobytes()
    reply = asyncio.run(hassclient.transcribe(HOST, port(server), wide, rate=48_000, width=4))
    assert reply.text == "word0 word1 word2"
    assert engine_of(server, "english").calls[-1].duration == pytest.approx(1.0, abs=0.01)


def test_an_empty_command_is_an_empty_transcript(server: AppServer) -> None:
    calls = len(engine_of(server, "english").calls)
    reply = asyncio.run(hassclient.transcribe(HOST, port(server), b""))
    assert reply.text == "" and reply.types() == ["transcript"]
    assert len(engine_of(server, "english").calls) == calls, "the engine was not asked"


def test_a_busy_model_is_an_error_event_not_a_hang(
    server: AppServer, stt_gate: threading.Event
) -> None:
    """``english`` runs one request and queues none: the second gets 429's error at once."""
    stt_gate.clear()
    try:

        async def two_commands() -> tuple[hassclient.TranscriptReply, ...]:
            first = asyncio.create_task(hassclient.transcribe(HOST, port(server), pcm16(0.5)))
            await asyncio.to_thread(
                wait_until, lambda: server.manager.get("english").running == 1, 10.0, "first"
            )
            second = await hassclient.transcribe(HOST, port(server), pcm16(0.5))
            assert not first.done()
            stt_gate.set()
            return await first, second

        first, second = asyncio.run(two_commands())
    finally:
        stt_gate.set()
    assert first.text == "word0 word1 word2"
    assert second.types() == ["error"]
    assert second.events[0].data["code"] == "rate_limit_exceeded"
    assert "busy" in second.events[0].data["text"]
    labels = {"route": "wyoming/transcribe", "model": "english", "status": "429"}
    assert server.metrics().value("bragi_requests_total", **labels) == 1
    assert_nothing_left(server)


def test_audio_over_the_upload_limit_is_refused_while_it_arrives(server: AppServer) -> None:
    raw = Raw(server)
    raw.event("audio-start", {"rate": 16_000, "width": 2, "channels": 1})
    chunk = pcm16(1.0)
    limit = int(UPLOAD_LIMIT_MB * 1024 * 1024)
    for _ in range(limit // len(chunk) + 1):
        raw.event("audio-chunk", {"rate": 16_000, "width": 2, "channels": 1}, chunk)
    events = raw.read_until("transcript")
    assert [e.type for e in events] == ["error"]
    assert events[0].data["code"] == "payload_too_large"
    assert raw.closed()
    raw.close()
    assert_nothing_left(server)


# --- text to speech ------------------------------------------------------------------


def test_one_shot_synthesis_is_one_block_in_one_format(
    server: AppServer, tts: FakeTtsBackend
) -> None:
    reply = asyncio.run(
        hassclient.synthesize_once(HOST, port(server), "One. Two. Three.", voice="tts/am_echo")
    )
    types = reply.types()
    assert types[0] == "audio-start" and types[-1] == "audio-stop"
    assert set(types[1:-1]) == {"audio-chunk"}
    assert reply.formats() == {(22_050, 2, 1)}
    assert reply.seconds == pytest.approx(1.5, abs=0.01)  # three sentences of 0.5 s
    assert tts.requests[-1].voice == "am_echo"


def test_streaming_speaks_the_first_sentence_before_the_text_is_all_in(
    server: AppServer, tts: FakeTtsBackend
) -> None:
    def spoken() -> int:
        return sum(event == "synthesized" for event, _ in tts.events)

    async def stream() -> tuple[hassclient.SpeechReply, int]:
        hold = asyncio.Event()
        reply_task = asyncio.create_task(
            hassclient.synthesize_streaming(
                HOST,
                port(server),
                ["The weather ", "is sun", "ny. Tomorrow ", "it rains. And then"],
                voice="tts/af_alloy",
                before_stop=hold,
            )
        )
        await asyncio.to_thread(wait_until, lambda: spoken() >= 2, 10.0, "two sentences")
        spoken_before_stop = spoken()
        hold.set()
        return await reply_task, spoken_before_stop

    tts.events.clear()
    reply, spoken_before_stop = asyncio.run(stream())
    assert spoken_before_stop == 2  # "The weather is sunny." and "Tomorrow it rains."
    assert [request.text for request in tts.requests[-3:]] == [
        "The weather is sunny.",
        "Tomorrow it rains.",
        "And then",
    ]
    types = reply.types()
    assert types[-1] == "synthesize-stopped"
    assert types.count("audio-start") == types.count("audio-stop") == 3  # a block a sentence
    assert reply.formats() == {(22_050, 2, 1)}
    assert reply.seconds == pytest.approx(1.5, abs=0.01)
    assert reply.first_audio is not None and reply.first_audio < reply.total


def test_the_voice_comes_from_the_name_the_language_or_the_default(
    server: AppServer, tts: FakeTtsBackend
) -> None:
    def voice_for(**request: Any) -> str:
        reply = asyncio.run(hassclient.synthesize_once(HOST, port(server), "Hi.", **request))
        assert reply.error is None, reply.error
        return tts.requests[-1].voice

    assert voice_for(voice="tts/am_echo") == "am_echo"
    assert voice_for(voice="am_echo") == "am_echo"  # a bare engine voice id
    assert voice_for(voice="echo") == "am_echo"  # an OpenAI voice, mapped by name
    assert voice_for() == "af_alloy"  # the default: the first voice

    async def by_language(language: str) -> None:
        from wyoming.client import AsyncTcpClient
        from wyoming.tts import Synthesize, SynthesizeVoice

        async with AsyncTcpClient(HOST, port(server)) as client:
            voice = SynthesizeVoice(language=language)
            await client.write_event(Synthesize(text="Hi.", voice=voice).event())
            while (event := await client.read_event()) is not None:
                assert event.type != "error", event.data
                if event.type == "audio-stop":
                    break

    asyncio.run(by_language("en_GB"))  # mapped by wyoming.tts_voices
    assert tts.requests[-1].voice == "bf_emma"
    asyncio.run(by_language("en-US"))  # the first voice that speaks it
    assert tts.requests[-1].voice == "af_alloy"

    reply = asyncio.run(hassclient.synthesize_once(HOST, port(server), "Hi.", voice="nobody"))
    assert reply.types() == ["error"]
    assert reply.error is not None and reply.error["code"] == "voice_not_found"
    assert "tts/af_alloy" in reply.error["text"]


def test_text_with_nothing_to_say_still_gets_a_wav_header(server: AppServer) -> None:
    once = asyncio.run(hassclient.synthesize_once(HOST, port(server), "   "))
    assert once.types() == ["audio-start", "audio-stop"]
    streamed = asyncio.run(hassclient.synthesize_streaming(HOST, port(server), ["", " "]))
    assert streamed.types() == ["audio-start", "audio-stop", "synthesize-stopped"]


def test_cloned_voices_are_listed_and_spoken_and_go_when_deleted(
    server: AppServer, cloner: FakeCloningTtsBackend
) -> None:
    def voices() -> set[str]:
        info, _ = asyncio.run(hassclient.describe(HOST, port(server)))
        return {voice.name for voice in info.tts[0].voices}

    assert "ada" not in voices()
    with server.http() as http:
        private = http.post(  # Wyoming has no keys: a user's private voice stays private
            "/v1/audio/voices",
            data={"name": "bea", "model": "clone"},
            files={"audio_sample": ("bea.wav", wav_of(sine(3.0, 16_000).samples))},
        )
        assert private.status_code == 200, private.text
        made = http.post(
            "/v1/audio/voices",
            data={"name": "ada", "model": "clone", "shared": "true"},
            files={"audio_sample": ("ada.wav", wav_of(sine(3.0, 16_000).samples))},
        )
        assert made.status_code == 200, made.text
        wait_until(lambda: "ada" in voices(), what="the new voice in the info")
        assert "bea" not in voices()
        hidden = asyncio.run(hassclient.synthesize_once(HOST, port(server), "Hi.", voice="bea"))
        assert hidden.error is not None and hidden.error["code"] == "voice_not_found"

        reply = asyncio.run(
            hassclient.synthesize_streaming(HOST, port(server), ["Hello. "], voice="ada")
        )
        assert reply.types()[-1] == "synthesize-stopped"
        reference = cloner.requests[-1].reference
        assert reference is not None and reference.id == made.json()["id"]

        assert http.delete(f"/v1/audio/voices/{made.json()['id']}").status_code == 200
    wait_until(lambda: "ada" not in voices(), what="the deleted voice to leave the info")
    gone = asyncio.run(hassclient.synthesize_once(HOST, port(server), "Hi.", voice="ada"))
    assert gone.error is not None and gone.error["code"] == "voice_not_found"


def test_an_engine_failing_its_own_way_is_an_error_not_a_hang(server: AppServer) -> None:
    streamed = asyncio.run(
        hassclient.synthesize_streaming(HOST, port(server), ["Fine. ", "EXPLODE now. ", "More."])
    )
    assert streamed.types()[-1] == "error", streamed.types()
    assert streamed.error is not None and streamed.error["code"] == "internal_error"
    assert streamed.types().count("audio-start") == 1  # the first sentence was spoken
    once = asyncio.run(hassclient.synthesize_once(HOST, port(server), "EXPLODE."))
    assert once.types() == ["error"]
    assert_nothing_left(server)
    labels = {"route": "wyoming/synthesize", "model": "tts", "status": "500"}
    assert server.metrics().value("bragi_requests_total", **labels) == 2


def test_ssml_is_refused_before_any_audio(server: AppServer) -> None:
    raw = Raw(server)
    raw.event("synthesize", {"text": "<speak>Hi</speak>", "text_format": "ssml"})
    events = raw.read_until("audio-stop")
    assert [e.type for e in events] == ["error"] and events[0].data["code"] == "unsupported"
    raw.close()


# --- framing and bad input -------------------------------------------------------------


def test_framing_edge_cases_leave_the_server_serving(server: AppServer) -> None:
    raw = Raw(server)
    # Inline data, a payload without data (the audio-start's format applies), unknown
    # events (a newer client's select-program, an event no one knows): all served.
    raw.send(b'{"type": "transcribe", "data": {"language": "en"}}\n')
    raw.send(b'{"type":"audio-start","data":{"rate":16000,"width":2,"channels":1}}\n')
    chunk = pcm16(0.5)
    raw.send(b'{"type":"audio-chunk","payload_length":%d}\n' % len(chunk) + chunk)
    raw.event("select-program", {"name": "bragi"})
    raw.event("never-heard-of-it", {"x": 1}, b"\x00" * 10)
    raw.send(b'{"type": "audio-stop"}\n')
    events = raw.read_until("transcript-stop")
    assert events[-2].data["text"] == "word0 word1 word2"
    assert engine_of(server, "english").calls[-1].duration == pytest.approx(0.5, abs=0.01)
    raw.send(b'{"type": "describe"}\n')  # the same connection still answers
    assert raw.read().type == "info"
    raw.close()

    bad_inputs = {
        b"this is not json\n": "invalid_event",
        b'["a", "list"]\n': "invalid_event",
        b'{"data": {}}\n': "invalid_event",
        b'{"type": "describe", "data": "text"}\n': "invalid_event",
        b'{"type": "synthesize", "data_length": 5}\n[1,2]': "invalid_event",
        b'{"type": "audio-chunk", "payload_length": -1}\n': "invalid_event",
        b'{"type": "audio-chunk", "payload_length": 99999999999}\n': "payload_too_large",
        b'{"type": "x", "data_length": 99999999}\n': "payload_too_large",
        b'{"type": "' + b"a" * 70_000 + b'"}\n': "payload_too_large",
        b'{"type": "audio-start", "data": {"rate": 16000, "width": 1, "channels": 1}}\n': (
            "invalid_event"
        ),
        b'{"type": "audio-chunk", "payload_length": 4}\n\x00\x00\x00\x00': "invalid_event",
        b'{"type": "synthesize-chunk", "data": {"text": "orphan"}}\n': "invalid_event",
        b'{"type": "synthesize", "data": {}}\n': "invalid_event",
    }
    for sent, code in bad_inputs.items():
        raw = Raw(server)
        raw.send(sent)
        reply = raw.read()
        assert reply is not None and reply.type == "error", sent[:60]
        assert reply.data["code"] == code, (sent[:60], reply.data)
        assert raw.closed(), "the connection ends after an error"
        raw.close()
    info, _ = asyncio.run(hassclient.describe(HOST, port(server)))
    assert info.asr
    server.assert_healthy()
    assert_nothing_left(server)


def test_a_header_nested_past_the_parsers_depth_is_an_invalid_event(server: AppServer) -> None:
    """Regression (found by tests/fuzz/test_wyoming_fuzz.py): a header line of 5000
    nested arrays raised RecursionError in the JSON parser, which is no ValueError, so
    the client got ``internal_error`` and the server log a traceback."""
    for nested in (b"[" * 5_000, b'{"a":' * 5_000):
        raw = Raw(server)
        raw.send(b'{"type": "describe", "data": ' + nested + b"\n")
        reply = raw.read()
        assert reply is not None and reply.type == "error"
        assert reply.data["code"] == "invalid_event", reply.data
        assert raw.closed()
        raw.close()
    assert_nothing_left(server)


def test_clients_that_leave_mid_stream_leave_nothing_behind(
    server: AppServer, tts: FakeTtsBackend, tts_gate: threading.Event
) -> None:
    # Mid-event: half a header, then half a payload.
    for partial in (b'{"type": "descr', b'{"type":"audio-chunk","payload_length":320}\n\x00'):
        raw = Raw(server)
        raw.send(partial)
        raw.close()
    # Mid-command: audio sent, no audio-stop.
    raw = Raw(server)
    raw.event("audio-start", {"rate": 16_000, "width": 2, "channels": 1})
    raw.event("audio-chunk", {"rate": 16_000, "width": 2, "channels": 1}, pcm16(0.2))
    raw.close()
    # Mid-speech: the engine is held before the last sentence, the client leaves.
    tts_gate.clear()
    tts.events.clear()
    try:
        raw = Raw(server)
        raw.event("synthesize-start", {"voice": {"name": "tts/af_alloy"}})
        raw.event("synthesize-chunk", {"text": "One sentence. Another one. "})
        wait_until(lambda: ("waiting", 0) in tts.events, what="the engine to reach the gate")
        assert server.manager.get("tts").in_use == 1
        raw.close()
    finally:
        tts_gate.set()  # the sentence in flight ends; then the stream stops
    wait_until(lambda: ("closed", 1) in tts.events, what="the engine's stream to be closed")
    wait_until(lambda: server.manager.get("tts").in_use == 0, what="the lease to go")
    assert [r.text for r in tts.requests[-1:]] == ["One sentence."], "nothing more was spoken"
    assert_nothing_left(server)
    server.assert_healthy()
    labels = {"route": "wyoming/synthesize", "model": "tts", "status": "499"}
    assert server.metrics().value("bragi_requests_total", **labels) >= 1


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """A server that closes a client silent for 0.3 s."""
    root = tmp_path_factory.mktemp("wyoming-idle")
    wyoming = WyomingSettings(enabled=True, port=free_port(), idle_timeout=0.3)
    models = {
        "stt": ModelConfig(model=str(make_model_dir(root, "fake-stt"))),
        "tts": ModelConfig(model=str(make_model_dir(root, "fake-tts"))),
    }
    settings = fake_settings(root / "data", models, wyoming=wyoming)
    with serve_app(settings, [FakeSttBackend(), FakeTtsBackend()]) as live:
        yield live


def test_a_silent_client_is_closed_after_the_idle_timeout(impatient: AppServer) -> None:
    raw = Raw(impatient)
    raw.event("audio-start", {"rate": 16_000, "width": 2, "channels": 1})
    reply = raw.read()
    assert reply is not None and reply.data["code"] == "idle_timeout"
    assert raw.closed()
    raw.close()
    assert_nothing_left(impatient)


def test_a_client_silent_after_a_streamed_reply_is_closed_after_the_idle_timeout(
    impatient: AppServer,
) -> None:
    """Regression (found by tests/fuzz/test_wyoming_fuzz.py at BRAGI_FUZZ_SCALE=6): a
    stream stayed ``finishing`` after its ``synthesize-stopped``, so the idle timeout
    took the client for one still waiting for audio and the connection never closed."""
    raw = Raw(impatient)
    raw.sock.settimeout(10)  # far over the idle timeout: a hang fails, it does not stall
    for _ in range(2):  # two replies in a row, as the fuzzer sent them
        raw.event("synthesize-start", {"voice": {"name": "tts/af_alloy"}})
        raw.event("synthesize-chunk", {"text": "Hi. "})
        raw.event("synthesize-stop")
        assert raw.read_until("synthesize-stopped")[-1].type == "synthesize-stopped"
    try:
        reply = raw.read()
    except TimeoutError:
        raise AssertionError("the silent client was never closed") from None
    assert reply is not None and reply.data["code"] == "idle_timeout", reply
    assert raw.closed()
    raw.close()
    assert_nothing_left(impatient)


@pytest.mark.skipif(
    not hassclient.loopback_multicast(), reason="no multicast on the loopback interface"
)
def test_zeroconf_announces_the_listener(tmp_path: Path) -> None:
    name = f"bragi-test-{tmp_path.name[-12:]}".replace("_", "-")
    wyoming = WyomingSettings(
        enabled=True,
        port=free_port(),
        zeroconf=True,
        zeroconf_name=name,
        zeroconf_address="127.0.0.1",  # the loopback interface: nothing reaches the network
    )
    models = {"stt": ModelConfig(model=str(make_model_dir(tmp_path, "fake-stt")))}
    settings = fake_settings(tmp_path / "data", models, wyoming=wyoming)
    with serve_app(settings, [FakeSttBackend()]):
        found = asyncio.run(hassclient.discover(name))
    assert found == (["127.0.0.1"], wyoming.port)
