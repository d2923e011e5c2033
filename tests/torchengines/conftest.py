"""Fixtures for the torch engines' tests (their environments come from ``torchenvs``'s
``engine_env``, installed once per session)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bragi.audio import decode_audio
from fakes import wav_of
from hubstub import HubStub
from livesupport import LiveServer, start_server
from speech import SpeechSample
from tinymodels.f5 import build_tiny_f5
from tinymodels.fish import build_tiny_fish
from tinymodels.qwen3tts import build_tiny_qwen3tts
from torchenvs import EngineEnv

# --- the torch-tts engines (Qwen3-TTS, F5-TTS, Fish Speech): one environment, one server ---

#: The tiny Qwen3-TTS models: alias -> (variant, size); options per alias below.
QWEN_MODELS = {
    "qwen-custom": ("custom_voice", "1b7"),
    "qwen-small": ("custom_voice", "0b6"),
    "qwen-design": ("voice_design", "1b7"),
    "qwen-clone": ("base", "0b6"),
}


@pytest.fixture(scope="session")
def torch_tts(engine_env: Callable[[str], EngineEnv]) -> EngineEnv:
    """The ``torch-tts`` environment the three engines share."""
    return engine_env("qwen3tts")


@pytest.fixture(scope="session")
def qwen_dirs(torch_tts: EngineEnv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("qwen3tts")
    return {
        alias: build_tiny_qwen3tts(torch_tts, root / alias, variant, size)
        for alias, (variant, size) in QWEN_MODELS.items()
    }


@pytest.fixture(scope="session")
def f5_hub(torch_tts: EngineEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStub]:
    """The stand-in hub serving a tiny F5-TTS as ``SWivid/F5-TTS`` and its Vocos as
    ``charactr/vocos-mel-24khz``: the catalog's ``f5-tts`` and its companion repo."""
    root = tmp_path_factory.mktemp("f5-repos")
    build_tiny_f5(torch_tts, root / "F5-TTS", root / "vocos-mel-24khz")
    (root / "F5-TTS" / "README.md").write_text("# F5-TTS\n")  # not a file the model needs
    stub = HubStub()
    stub.add_repo("SWivid/F5-TTS", root / "F5-TTS")
    stub.add_repo("charactr/vocos-mel-24khz", root / "vocos-mel-24khz")
    stub.start()
    yield stub
    stub.stop()


@pytest.fixture(scope="session")
def fish_dir(torch_tts: EngineEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_fish(torch_tts, tmp_path_factory.mktemp("fish") / "openaudio-s1-mini")


@pytest.fixture(scope="session")
def tts_live(
    torch_tts: EngineEnv,
    qwen_dirs: dict[str, Path],
    fish_dir: Path,
    speech: dict[str, SpeechSample],
    f5_hub: HubStub,
    models_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    """``bragi serve`` with every tiny torch-tts model and the starter Whisper (which
    transcribes cloned voices' recordings); ``f5`` is the catalog's ``f5-tts``, pulled
    with its vocoder from the stand-in hub at start-up."""
    root = tmp_path_factory.mktemp("tts-server")
    data = root / "data"
    data.mkdir()
    (data / "envs").symlink_to(torch_tts.data_dir / "envs")  # the installed environment
    seeded = {"seed": 7, "threads": 1}
    models: dict[str, dict[str, object]] = {
        alias: {"model": str(path), "options": seeded} for alias, path in qwen_dirs.items()
    }
    models["qwen-capped"] = {
        "model": str(qwen_dirs["qwen-small"]),
        "options": {**seeded, "max_frames_base": 4, "max_frames_per_char": 0},
    }
    models["f5"] = {"model": "f5-tts", "options": {**seeded, "nfe_step": 4}}
    # Fish's default voice: the first words of a human recording, with what they say.
    opening = root / "ever-tried.wav"
    beckett = decode_audio(speech["beckett"].path.read_bytes(), 16_000)
    opening.write_bytes(wav_of(beckett.samples[: round(3.4 * 16_000)]))
    default = {
        "default_reference": str(opening),
        "default_reference_text": "Ever tried. Ever failed.",
    }
    models["fish"] = {
        "model": str(fish_dir),
        "options": {**seeded, "seed": 2, "max_reference_seconds": 6, **default},
    }
    models["fish-capped"] = {
        "model": str(fish_dir),
        "options": {**seeded, "seed": 2, "max_frames_base": 8, "max_frames_per_char": 0, **default},
    }
    models["whisper-1"] = {"model": "whisper-base"}
    # Workers idle for two minutes go (the xtts and speechbrain modules run after these).
    config = {"models": models, "max_loaded_models": 4, "keep_alive": "120s"}
    (root / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    hub = {"HF_ENDPOINT": f5_hub.url, "HF_HUB_OFFLINE": "0"}
    with start_server(data, models_cache, config=root / "config.yaml", env=hub) as server:
        yield server


@pytest.fixture(scope="session")
def cloned(tts_live: LiveServer, speech: dict[str, SpeechSample]) -> dict[str, str]:
    """Cloned voices from one human recording (beckett, 10 s), by name -> id: ``told`` with
    its exact transcript; ``heard`` without one, so the server's starter Whisper writes it
    (word by word, with times); ``bare`` stored by ``bragi voices add`` with transcription
    off, so it has none."""
    client = tts_live.client()
    recording = speech["beckett"]
    ids = {}
    for name, extra in (("told", {"transcript": recording.text}), ("heard", {})):
        with recording.path.open("rb") as audio:
            ids[name] = client.audio.voices.create(
                name=name, audio_sample=audio, consent="c", extra_body=extra
            ).id
    config = tts_live.data_dir.parent / "config.yaml"
    quiet = config.with_name("no-transcription.yaml")
    settings = json.loads(config.read_text()) | {"voice_transcription_model": None}
    quiet.write_text(json.dumps(settings))
    common = ["--config", str(quiet), "--data-dir", str(tts_live.data_dir)]
    added = subprocess.run(
        [sys.executable, "-m", "bragi", "voices", "add", "bare", str(recording.path), *common],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert added.returncode == 0, added.stderr
    assert "stored without a transcript (voice_transcription_model is not set)" in added.stderr
    ids["bare"] = added.stdout.split()[0]
    return ids
