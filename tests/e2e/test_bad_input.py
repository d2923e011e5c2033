"""Bad input of every kind: a 4xx in the OpenAI error shape, and the server stays healthy."""

from __future__ import annotations

import io
import struct

import httpx
import pytest

from livesupport import LiveServer
from speech import SpeechSample, reencode

pytestmark = pytest.mark.slow


def _wav(samples: bytes, rate: int = 16000) -> bytes:
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(samples),
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        rate,
        rate * 2,
        2,
        16,
        b"data",
        len(samples),
    )
    return header + samples


def _post(http: httpx.Client, data: dict[str, str], files: dict[str, tuple[str, bytes]] | None):
    return http.post("/v1/audio/transcriptions", data=data, files=files)


def _assert_openai_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    for word in words:
        assert word in error["message"].lower(), error["message"]


@pytest.fixture(scope="module")
def mp3(speech: dict[str, SpeechSample]) -> bytes:
    return reencode(speech["beckett"].path, "mp3", "libmp3lame")


CASES = {
    "empty file": ({"model": "whisper-1"}, ("a.wav", b""), 400, ("empty",)),
    "text file named .wav": (
        {"model": "whisper-1"},
        ("notes.wav", b"hello, this is not audio\n" * 40),
        400,
        ("format",),
    ),
    "unknown model": ({"model": "no-such-model"}, None, 404, ("no-such-model",)),
    "unknown response_format": (
        {"model": "whisper-1", "response_format": "mp3"},
        None,
        400,
        ("response_format",),
    ),
    "temperature 5": ({"model": "whisper-1", "temperature": "5"}, None, 400, ("temperature",)),
    "missing file": ({"model": "whisper-1"}, "omit", 400, ("file",)),
    "missing model": ({}, None, 400, ("model",)),
    "unknown language": ({"model": "whisper-1", "language": "klingon"}, None, 400, ("language",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_request(server: LiveServer, mp3: bytes, case: str) -> None:
    data, file, status, words = CASES[case]
    files = None if file == "omit" else {"file": file or ("beckett.mp3", mp3)}
    with server.http() as http:
        response = _post(http, data, files)
    _assert_openai_error(response, status, *words)
    if case == "unknown model":
        assert response.json()["error"]["code"] == "model_not_found"
    server.assert_healthy()


@pytest.mark.parametrize("samples", [b"", b"\0" * 32000], ids=["0-second wav", "silent wav"])
def test_silence_is_an_empty_transcript_like_openai(server: LiveServer, samples: bytes) -> None:
    with server.http() as http:
        response = _post(http, {"model": "whisper-1"}, {"file": ("quiet.wav", _wav(samples))})
    assert response.status_code == 200, response.text
    assert response.json()["text"] == ""


def test_truncated_mp3(server: LiveServer, mp3: bytes) -> None:
    with server.http() as http:
        garbage = _post(http, {"model": "whisper-1"}, {"file": ("cut.mp3", mp3[:100])})
        partial = _post(http, {"model": "whisper-1"}, {"file": ("cut.mp3", mp3[: len(mp3) // 3])})
    _assert_openai_error(garbage, 400)
    assert partial.status_code == 200  # what decodes is transcribed, as ffmpeg would
    assert partial.json()["text"].strip()
    server.assert_healthy()


def test_oversized_upload_is_413(server: LiveServer) -> None:
    big = io.BytesIO(b"\0" * (26 * 1024 * 1024))
    with server.http() as http:
        response = http.post(
            "/v1/audio/transcriptions",
            data={"model": "whisper-1"},
            files={"file": ("big.wav", big)},
        )
    assert response.status_code == 413
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    server.assert_healthy()


def test_no_temporary_files_left(server: LiveServer, speech: dict[str, SpeechSample]) -> None:
    private_tmp = server.data_dir / "tmp"  # the server's TMPDIR (see conftest)
    big_wav = reencode(speech["beckett"].path, "wav", "pcm_s16le", rate=48000, channels=2)
    assert len(big_wav) > 1024 * 1024  # over 1 MiB: the upload is spooled to a file
    with server.http() as http:
        for _ in range(2):
            ok = _post(http, {"model": "whisper-1"}, {"file": ("a.wav", big_wav)})
            assert ok.status_code == 200
            _post(http, {"model": "whisper-1"}, {"file": ("a.wav", b"junk" * 500_000)})
    assert private_tmp.is_dir()
    assert list(private_tmp.iterdir()) == []
