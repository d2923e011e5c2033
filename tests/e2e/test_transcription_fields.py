"""The newer transcription request fields through the official client, against the starter
set (which has no diarization model offline): what works, and every bad value a 400."""

from __future__ import annotations

import base64

import openai
import pytest

from livesupport import LiveServer
from speech import SpeechSample

pytestmark = [pytest.mark.slow]


def _create(server: LiveServer, sample: SpeechSample, **kwargs: object) -> object:
    return server.client().audio.transcriptions.create(
        model=kwargs.pop("model", "whisper-1"),
        file=sample.path,
        **kwargs,  # type: ignore[arg-type]
    )


def test_openai_model_names_are_aliases(server: LiveServer) -> None:
    models = {m.id: m.model_dump() for m in server.client().models.list()}
    for name in ("gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-transcribe"):
        assert models[name]["alias_of"] == "whisper-1" and models[name]["kind"] == "stt"
    assert models["gpt-4o-transcribe-diarize"]["diarize"] is True
    for name in ("gpt-4o-mini-tts", "tts-1-hd"):
        assert models[name]["alias_of"] == "tts-1" and models[name]["backend"] == "piper"


def test_logprobs_keywords_languages_and_vad(server: LiveServer, speech: dict) -> None:
    result = _create(
        server,
        speech["beckett"],
        model="gpt-4o-mini-transcribe",
        include=["logprobs"],
        extra_body={"keywords": ["Beckett"], "languages": ["en", "de"]},
        chunking_strategy={
            "type": "server_vad",
            "threshold": 0.4,
            "silence_duration_ms": 400,
            "prefix_padding_ms": 200,
        },
    ).model_dump()
    assert "fail" in result["text"].lower()
    assert result["languages"] == [{"code": "en"}]
    logprobs = result["logprobs"]
    assert len(logprobs) >= 10 and all(p["logprob"] <= 0 for p in logprobs)
    # the client types these bytes as floats in json replies (ints in stream events)
    assert bytes(int(b) for b in logprobs[0]["bytes"]).decode() == logprobs[0]["token"]
    assert result["usage"]["type"] == "duration"


def test_streamed_logprobs_and_usage(server: LiveServer, speech: dict) -> None:
    events = list(
        server.client().audio.transcriptions.create(
            model="gpt-4o-transcribe",
            file=speech["beckett"].path,
            stream=True,
            include=["logprobs"],
        )
    )
    assert all(e.logprobs for e in events if e.type == "transcript.text.delta")
    done = events[-1].model_dump()
    assert done["type"] == "transcript.text.done" and done["usage"]["type"] == "duration"
    assert done["usage"]["seconds"] == pytest.approx(10.0, abs=0.1)


BAD = [
    ({"response_format": "diarized_json"}, "response_format", "diarization_unavailable"),
    ({"chunking_strategy": "sometimes"}, "chunking_strategy", None),
    ({"chunking_strategy": {"type": "server_vad", "threshold": 2}}, "chunking_strategy", None),
    ({"include": ["everything"]}, "include", None),
    ({"extra_body": {"languages": ["klingon"]}}, "languages", None),
    ({"language": "en", "extra_body": {"languages": ["en"]}}, "languages", None),
    ({"extra_body": {"keywords": [""]}}, "keywords", None),
    ({"extra_body": {"known_speaker_names": ["ann"]}}, "known_speaker_references", None),
    (
        {"extra_body": {"known_speaker_names": ["ann"], "known_speaker_references": ["x"]}},
        "known_speaker_names",
        None,
    ),
    ({"extra_body": {"num_speakers": 0}}, "num_speakers", None),
]


@pytest.mark.parametrize(("kwargs", "param", "code"), BAD)
def test_bad_values_are_openai_400s(
    server: LiveServer, speech: dict, kwargs: dict, param: str, code: str | None
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _create(server, speech["beckett"], **kwargs)
    error = caught.value.body
    assert isinstance(error, dict) and error["type"] == "invalid_request_error", error
    assert error["param"] == param, error
    if code:
        assert error["code"] == code


def test_bad_reference_data_url(server: LiveServer, speech: dict) -> None:
    short = base64.b64encode(b"RIFF....").decode()
    with pytest.raises(openai.BadRequestError) as caught:
        _create(
            server,
            speech["beckett"],
            extra_body={
                "diarize": True,
                "known_speaker_names": ["ann"],
                "known_speaker_references": [f"data:audio/wav;base64,{short}"],
            },
        )
    assert caught.value.body["param"] in ("known_speaker_references", "response_format")  # type: ignore[index]
