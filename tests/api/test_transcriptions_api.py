"""``POST /v1/audio/transcriptions`` with a fake engine: silence is an empty transcript,
as OpenAI answers it; what is not audio at all is a 400."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import openai
import pytest

from appserver import AppServer, fake_settings, serve_app
from bragi.config import ModelConfig
from fakes import FakeSttBackend, make_model_dir, wav_bytes, wav_of


@pytest.fixture(scope="module")
def stt() -> FakeSttBackend:
    return FakeSttBackend()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, stt: FakeSttBackend) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("transcriptions")
    models = {"stt": ModelConfig(model=str(make_model_dir(root, "fake-stt")))}
    with serve_app(fake_settings(root / "data", models), [stt]) as live:
        yield live


SILENT = {
    "digital silence": wav_of(np.zeros(32_000, dtype=np.float32)),
    "no samples": wav_of(np.zeros(0, dtype=np.float32)),
}


@pytest.mark.parametrize("audio", list(SILENT))
def test_silence_is_an_empty_transcript(server: AppServer, stt: FakeSttBackend, audio: str) -> None:
    client = server.client()
    calls = len(stt.calls)
    plain = client.audio.transcriptions.create(model="stt", file=("a.wav", SILENT[audio]))
    assert plain.text == ""
    verbose = client.audio.transcriptions.create(
        model="stt", file=("a.wav", SILENT[audio]), response_format="verbose_json"
    )
    assert (verbose.text, verbose.segments, verbose.language) == ("", [], "english")
    assert verbose.duration == (2.0 if audio == "digital silence" else 0.0)
    events = client.audio.transcriptions.create(
        model="stt", file=("a.wav", SILENT[audio]), stream=True
    )
    assert [(e.type, getattr(e, "text", None)) for e in events] == [("transcript.text.done", "")]
    assert len(stt.calls) == calls, "the engine is not run on silence"


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"", "empty_audio"), (b"these bytes are no audio at all\n" * 20, "invalid_audio")],
    ids=["no bytes", "not audio"],
)
def test_what_is_not_audio_is_a_400(server: AppServer, data: bytes, code: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        server.client().audio.transcriptions.create(model="stt", file=("a.wav", data))
    assert refused.value.code == code
    assert server.client().audio.transcriptions.create(
        model="stt", file=("a.wav", wav_bytes(1.0))
    ).text == ("word0 word1 word2")
