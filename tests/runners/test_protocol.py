"""The worker protocol's parts: frames over a socket pair, and the JSON codec."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bragi import errors
from bragi.audio.types import Audio
from bragi.backends.protocol import (
    Segment,
    SttCapabilities,
    SynthesisRequest,
    TimedText,
    TranscribeOptions,
    TranscriptionInfo,
    TtsCapabilities,
    VadRequest,
    Voice,
    VoiceReference,
    Word,
)
from bragi.errors import BragiError, EngineError, RateLimitError, UnknownVoiceError
from bragi.runners import codec
from bragi.runners.framing import Channel, ChannelClosed
from fakes import sine


@pytest.fixture
def pair() -> Iterator[tuple[Channel, Channel]]:
    left, right = socket.socketpair()
    yield Channel(left), Channel(right)
    left.close()
    right.close()


def test_frames_carry_a_header_and_a_large_payload(pair: tuple[Channel, Channel]) -> None:
    sender, receiver = pair
    audio = sine(120.0, 48_000)  # 23 MB: far more than a socket buffer holds
    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(sender.send, {"op": "chunk", "n": 1}, codec.audio_payload(audio))
        frame = receiver.receive(deadline=time.monotonic() + 30)
        sent.result(timeout=30)
    assert frame.op == "chunk" and frame.header == {"op": "chunk", "n": 1}
    received = codec.audio_from_payload(frame.payload, 48_000)
    np.testing.assert_array_equal(received.samples, audio.samples)
    received.samples[0] = 0.5  # writable, for engines that work in place

    sender.send({"op": "end"})
    assert receiver.receive().payload == b""


def test_a_silent_peer_times_out_and_a_gone_one_is_closed(pair: tuple[Channel, Channel]) -> None:
    sender, receiver = pair
    with pytest.raises(TimeoutError):
        receiver.receive(deadline=time.monotonic() + 0.05)
    sender.close()
    with pytest.raises(ChannelClosed):
        receiver.receive()


def test_a_truncated_or_malformed_frame_is_refused(pair: tuple[Channel, Channel]) -> None:
    sender, receiver = pair
    raw = socket.socket(fileno=sender.fileno())
    raw.sendall(struct.pack(">IQ", 2**31, 0))
    with pytest.raises(ChannelClosed, match="malformed"):
        receiver.receive()
    raw.sendall(struct.pack(">IQ", 10, 0) + b'{"op"')
    raw.detach()
    sender.close()
    with pytest.raises(ChannelClosed, match="end of stream"):
        receiver.receive()


def test_the_protocol_types_round_trip_through_json() -> None:
    segment = Segment(
        3, 1.5, 2.0, " hi", seek=9, tokens=(1, 2), avg_logprob=-0.25, words=(Word("hi", 1.5, 2.0),)
    )
    assert codec.segment(codec.encode(segment)) == segment
    assert codec.segment(codec.encode(Segment(0, 0.0, 1.0, "x"))).words is None
    info = TranscriptionInfo("de", 12.5, None)
    assert codec.transcription_info(codec.encode(info)) == info
    options = TranscribeOptions(task="translate", language="fr", prompt="p", word_timestamps=True)
    assert codec.transcribe_options(codec.encode(options)) == options
    newer = TranscribeOptions(
        hotwords=("Beckett",), languages=("en", "de"), logprobs=True, vad=VadRequest(0.4, 300)
    )
    assert codec.transcribe_options(json.loads(json.dumps(codec.encode(newer)))) == newer
    request = SynthesisRequest("Hallo.", "alba", 1.5, "de", instructions="Whisper it.")
    header, payload = codec.synthesis_header(request)
    assert payload == b""
    assert codec.synthesis_request(json.loads(json.dumps(header)), payload) == request
    tts = TtsCapabilities(
        24_000, native_speed=False, languages=frozenset({"ja"}), cloning=True, instructions="voice"
    )
    assert codec.tts_capabilities(codec.encode(tts)) == tts


def test_a_cloned_voice_travels_as_a_json_header_and_raw_samples() -> None:
    samples = np.linspace(-0.5, 0.5, 4000, dtype=np.float32)
    timed = (TimedText(0.0, 0.6, "Hello"), TimedText(0.7, 1.2, "there."))
    reference = VoiceReference(
        "voice_1f", Audio(samples, 22_050), transcript="Hello there.", timed_transcript=timed
    )
    request = SynthesisRequest("Hi.", "anna", 1.0, None, reference=reference)
    header, payload = codec.synthesis_header(request)
    assert header["reference"] == {
        "id": "voice_1f",
        "sample_rate": 22_050,
        "transcript": "Hello there.",
        "timed_transcript": [
            {"start": 0.0, "end": 0.6, "text": "Hello"},
            {"start": 0.7, "end": 1.2, "text": "there."},
        ],
    }
    assert len(payload) == 4 * len(samples)
    decoded = codec.synthesis_request(json.loads(json.dumps(header)), bytes(payload))
    assert decoded.reference is not None
    assert decoded.reference.id == "voice_1f"
    assert decoded.reference.transcript == "Hello there."
    assert decoded.reference.timed_transcript == timed
    assert decoded.reference.audio.sample_rate == 22_050
    np.testing.assert_array_equal(decoded.reference.audio.samples, samples)
    assert decoded.text == "Hi." and decoded.voice == "anna"


def test_the_rest_of_the_protocol_types() -> None:
    voice = Voice("bert", "en-US", "male")
    assert codec.voice(codec.encode(voice)) == voice
    for stt in (SttCapabilities(languages=frozenset({"en", "de"})), SttCapabilities()):
        assert codec.stt_capabilities(codec.encode(stt)) == stt
    tts = TtsCapabilities(24_000, native_speed=False, languages=frozenset({"ja"}))
    assert codec.tts_capabilities(codec.encode(tts)) == tts
    with pytest.raises(TypeError):  # a field this side does not know: version skew
        codec.voice({"id": "x", "accent": "scouse"})


def _error_classes() -> list[type[BragiError]]:
    found = (getattr(errors, name) for name in errors.__all__)
    return [c for c in found if isinstance(c, type) and issubclass(c, BragiError)]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda cls: cls.__name__)
def test_every_bragi_error_keeps_its_class_and_status(cls: type[BragiError]) -> None:
    error = cls("the message", param="voice") if cls is not RateLimitError else cls("busy")
    back = codec.decode_error(codec.encode_error(error))
    assert type(back) is cls and back.status_code == cls.status_code
    assert (back.message, back.param, back.code) == (error.message, error.param, error.code)


def test_unknown_errors_become_their_nearest_known_class() -> None:
    class CloneFailed(UnknownVoiceError):
        """A backend's own subclass, unknown to the server."""

    back = codec.decode_error(codec.encode_error(CloneFailed("no such clone", param="voice")))
    assert type(back) is UnknownVoiceError and back.status_code == 400

    crash = codec.decode_error(codec.encode_error(ZeroDivisionError("division by zero")))
    assert type(crash) is EngineError and crash.message == "ZeroDivisionError: division by zero"

    busy = codec.decode_error(codec.encode_error(RateLimitError("busy", retry_after=7)))
    assert isinstance(busy, RateLimitError) and busy.retry_after == 7
