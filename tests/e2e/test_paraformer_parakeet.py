"""Paraformer and Parakeet end to end: tiny models in their real layouts, a real server, the
official openai client, real speech. The models are random, so the text is noise: these
tests check the response structure, the times and the refusals, never the words.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import openai
import pytest

from livesupport import SEGMENT_FIELDS, LiveServer, start_server
from speech import SpeechSample
from tinymodels import write_paraformer, write_parakeet

pytestmark = [
    pytest.mark.slow,
    # openai 3.x marks audio.translations.create as deprecated; servers still offer it.
    pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server configured with three tiny models, listed by path with their backend."""
    root = tmp_path_factory.mktemp("tiny-engines")
    models = {
        "paraformer-tiny": ("paraformer", write_paraformer(root / "paraformer")),
        "paraformer-plain": ("paraformer", write_paraformer(root / "plain", timestamps=False)),
        "parakeet-tiny": ("parakeet", write_parakeet(root / "parakeet")),
    }
    config = {
        "models": {
            alias: {"model": str(path), "backend": backend, "options": {"threads": 1}}
            for alias, (backend, path) in models.items()
        }
    }
    (root / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    with start_server(root / "data", root / "models", config=root / "config.yaml") as live:
        yield live


@pytest.mark.parametrize("model", ["paraformer-tiny", "parakeet-tiny"])
def test_json_and_verbose_json_with_words(
    tiny_server: LiveServer, speech: dict[str, SpeechSample], model: str
) -> None:
    client = tiny_server.client()
    sample = speech["two_cities"]
    with sample.path.open("rb") as audio:
        plain = client.audio.transcriptions.create(model=model, file=audio)
    assert isinstance(plain.text, str) and plain.text.strip()
    with sample.path.open("rb") as audio:
        verbose = client.audio.transcriptions.create(
            model=model,
            file=audio,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    body = verbose.model_dump()
    assert abs(body["duration"] - sample.duration) < 0.1 and body["task"] == "transcribe"
    assert isinstance(body["language"], str)
    _assert_segments(body["segments"], body["duration"])
    words = body["words"]
    assert words and all(set(w) == {"word", "start", "end"} for w in words)
    assert all(a["start"] <= b["start"] for a, b in pairwise(words))
    assert all(0 <= w["start"] <= w["end"] <= body["duration"] for w in words)


def test_words_are_left_out_when_the_engine_gives_no_times(
    tiny_server: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    sample = speech["beckett"]
    with tiny_server.http() as http:
        response = http.post(
            "/v1/audio/transcriptions",
            data={"model": "paraformer-plain", "response_format": "verbose_json"},
            files={"file": ("beckett.wav", sample.path.read_bytes(), "audio/wav")},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "words" not in body
    _assert_segments(body["segments"], body["duration"])
    with pytest.raises(openai.BadRequestError, match="word timestamps"):
        tiny_server.client().audio.transcriptions.create(
            model="paraformer-plain",
            file=sample.path,
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )


@pytest.mark.parametrize("model", ["paraformer-tiny", "parakeet-tiny"])
def test_translation_and_unknown_languages_are_400(
    tiny_server: LiveServer, speech: dict[str, SpeechSample], model: str
) -> None:
    client = tiny_server.client()
    path = speech["beckett"].path
    with pytest.raises(openai.BadRequestError, match="translate") as translation:
        client.audio.translations.create(model=model, file=path)
    assert translation.value.status_code == 400
    with pytest.raises(openai.BadRequestError, match="'ja'") as japanese:
        client.audio.transcriptions.create(model=model, file=path, language="ja")
    assert japanese.value.param == "language"


def test_models_are_listed_with_their_backend(tiny_server: LiveServer) -> None:
    listed = {m.id: m.model_dump() for m in tiny_server.client().models.list()}
    assert listed["paraformer-tiny"]["backend"] == "paraformer"
    assert listed["parakeet-tiny"]["backend"] == "parakeet"
    assert listed["parakeet-tiny"]["kind"] == "stt"


def test_loading_and_transcribing_never_imports_torch(tmp_path: Path) -> None:
    """Both engines, loaded and run, in a process where any attempt to import torch is seen
    (even one a library would catch as ImportError when torch is not installed)."""
    write_paraformer(tmp_path / "paraformer")
    write_parakeet(tmp_path / "parakeet")
    code = f"""
import sys
attempts = []
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {{"torch", "torchaudio", "tensorflow"}}:
            attempts.append(name)
        return None
sys.meta_path.insert(0, Watch())
import numpy as np, pathlib
from bragi.audio.types import Audio
from bragi.backends.paraformer import BACKEND as PARAFORMER
from bragi.backends.parakeet import BACKEND as PARAKEET
from bragi.backends.protocol import TranscribeOptions
audio = Audio(np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32), 16000)
for backend in (PARAFORMER, PARAKEET):
    engine = backend.load(pathlib.Path({str(tmp_path)!r}) / backend.name, "cpu",
                          backend.options_model())
    segments, _ = engine.transcribe(audio, TranscribeOptions())
    assert list(segments)
assert "sherpa_onnx" in sys.modules and "onnx_asr" in sys.modules
print(attempts)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _assert_segments(segments: list[dict[str, Any]], duration: float) -> None:
    assert segments
    previous_end = 0.0
    for index, segment in enumerate(segments):
        assert set(segment) == SEGMENT_FIELDS and segment["id"] == index
        assert previous_end <= segment["start"] < segment["end"] <= duration + 0.001
        assert isinstance(segment["text"], str) and segment["tokens"]
        previous_end = segment["end"]
