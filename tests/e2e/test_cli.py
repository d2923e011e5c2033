"""The `bragi` command: local transcribe/speak, ps against a live server, help."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from livesupport import LiveServer
from speech import SpeechSample, word_error_rate

pytestmark = pytest.mark.slow


def _bragi(
    *args: str, cache: Path, data: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRAGI_", "HF_"))}
    env |= {"BRAGI_DATA_DIR": str(data), "BRAGI_MODEL_CACHE_DIR": str(cache), "BRAGI_DEVICE": "cpu"}
    return subprocess.run(
        [sys.executable, "-m", "bragi", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=300,
    )


def _seconds(path: Path) -> float:
    with av.open(io.BytesIO(path.read_bytes())) as container:
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
        rate = container.streams.audio[0].rate
    return sum(len(f) for f in frames) / rate


def test_transcribe_locally(
    speech: dict[str, SpeechSample], models_cache: Path, tmp_path: Path
) -> None:
    sample = speech["beckett"]
    result = _bragi("transcribe", str(sample.path), cache=models_cache, data=tmp_path)
    assert result.returncode == 0, result.stderr
    assert word_error_rate(sample.text, result.stdout) < 0.25
    srt = _bragi(
        "transcribe",
        str(sample.path),
        "--format",
        "srt",
        "--model",
        "whisper-tiny.en",
        cache=models_cache,
        data=tmp_path,
    )
    assert srt.returncode == 0 and srt.stdout.startswith("1\n00:00:")


def test_speak_to_file_and_from_stdin(models_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "hello.wav"
    result = _bragi(
        "speak",
        "Hello there. This is Bragi speaking.",
        "-o",
        str(out),
        cache=models_cache,
        data=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert _seconds(out) > 1.0
    piped = tmp_path / "piped.mp3"
    result = _bragi(
        "speak",
        "-o",
        str(piped),
        "--speed",
        "2",
        cache=models_cache,
        data=tmp_path,
        stdin="Read from standard input.",
    )
    assert result.returncode == 0, result.stderr
    assert _seconds(piped) > 0.3  # an mp3 (from the extension) that decodes to speech


def test_bad_cli_input_is_one_line(models_cache: Path, tmp_path: Path) -> None:
    missing = _bragi("transcribe", str(tmp_path / "nope.wav"), cache=models_cache, data=tmp_path)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    speed = _bragi("speak", "Hi.", "--speed", "9", cache=models_cache, data=tmp_path)
    assert speed.returncode == 1 and "speed" in speed.stderr


def test_ps_shows_loaded_models(server: LiveServer, speech: dict[str, SpeechSample]) -> None:
    server.client().audio.transcriptions.create(
        model="whisper-tiny.en", file=speech["beckett"].path
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bragi",
            "ps",
            "--url",
            server.base_url,
            "--api-key",
            server.api_key,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    line = lines["whisper-tiny.en"]
    assert "loaded" in line and "faster-whisper" in line and " s" in line  # time until unload
    assert "loaded" in lines["whisper-1"] and "never" in lines["whisper-1"]  # preloaded, kept


@pytest.mark.parametrize("command", [[], ["serve"], ["transcribe"], ["speak"], ["keys"], ["pull"]])
def test_help_everywhere(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bragi", *command, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "usage: bragi" in result.stdout
