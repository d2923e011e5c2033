"""Coqui XTTS-v2 for real: ``bragi backend install xtts``, a tiny random-weight checkpoint
in the hub's layout pulled by its catalog name (``xtts-v2``) from the stand-in hub, a worker
started from that environment, and ``bragi serve`` answering the official openai client.
The weights are random, so the audio is noise: these tests check formats, streaming,
voices, errors and where torch lives, never the sound.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from bragi.backends.xtts import BACKEND
from cataloghub import catalog_hub
from livesupport import LiveServer, start_server
from speech import SpeechSample
from tinymodels.xtts import LANGUAGES, SPEAKERS, build_tiny_xtts
from torchenvs import EngineEnv, child_pids, mapped_files

pytestmark = pytest.mark.slow
MODEL = "xtts-tiny"


@pytest.fixture(scope="module")
def xtts_env(engine_env: object) -> EngineEnv:
    return engine_env("xtts")  # type: ignore[operator, no-any-return]


@pytest.fixture(scope="module")
def xtts_dir(xtts_env: EngineEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_xtts(xtts_env, tmp_path_factory.mktemp("xtts") / "XTTS-v2")


@pytest.fixture(scope="module")
def live(
    xtts_env: EngineEnv, xtts_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The catalog's ``xtts-v2``, pulled from the stand-in hub in the layout of
    ``coqui/XTTS-v2`` (the tiny checkpoint), then served from the installed environment."""
    root = tmp_path_factory.mktemp("xtts-server")
    data = root / "data"
    data.mkdir()
    (data / "envs").symlink_to(xtts_env.data_dir / "envs")  # the installed environment
    options = {"stream_chunk_size": 4, "threads": 1}
    config = {
        "model_cache_dir": str(root / "models"),  # for the command-line tests too
        "models": {MODEL: {"model": "xtts-v2", "options": options}},
    }
    (root / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    hub = catalog_hub({"coqui/XTTS-v2": xtts_dir})
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}
    try:
        with start_server(data, root / "models", config=root / "config.yaml", env=env) as server:
            yield server
    finally:
        hub.stop()


def test_the_tiny_checkpoint_is_recognised_as_xtts(xtts_dir: Path, tmp_path: Path) -> None:
    assert BACKEND.detect(xtts_dir)
    assert sorted(p.name for p in xtts_dir.iterdir()) == [
        "config.json",
        "model.pth",
        "speakers_xtts.pth",
        "vocab.json",
    ]
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model": "vits"}))
    (other / "model.pth").write_bytes(b"")
    assert not BACKEND.detect(other)


def test_models_lists_the_built_in_speakers_and_languages(live: LiveServer) -> None:
    with live.http() as http:
        http.post("/v1/audio/speech", json={"model": MODEL, "input": "Hi.", "voice": SPEAKERS[0]})
        listed = http.get(f"/v1/models/{MODEL}").json()
        voices = http.get("/v1/audio/voices", params={"model": MODEL}).json()
    assert {v["id"] for v in listed["voices"]} == set(SPEAKERS)
    assert listed["cloning"] is True
    assert {v["id"] for v in voices["data"]} >= set(SPEAKERS)


@pytest.mark.parametrize("response_format", ["wav", "mp3", "flac", "opus", "aac", "pcm"])
def test_speech_in_every_format(live: LiveServer, response_format: str) -> None:
    client = live.client()
    with client.audio.speech.with_streaming_response.create(
        model=MODEL,
        voice=SPEAKERS[1],  # type: ignore[arg-type]
        input="Hello there. This is a test.",
        response_format=response_format,  # type: ignore[arg-type]
    ) as response:
        body = response.read()
    assert len(body) > 200
    if response_format == "wav":
        with wave.open(io.BytesIO(body)) as audio:
            assert audio.getframerate() == 24_000 and audio.getnchannels() == 1
            assert audio.getnframes() > 2_000  # two sentences of at least 12 audio tokens


def test_speech_streams_in_several_chunks(live: LiveServer) -> None:
    request = {
        "model": MODEL,
        "voice": SPEAKERS[0],
        "input": "One sentence here. And another one there.",
        "response_format": "pcm",
        "stream_format": "sse",
    }
    with live.http() as http, http.stream("POST", "/v1/audio/speech", json=request) as response:
        assert response.status_code == 200
        events = [
            json.loads(line[len("data: ") :])
            for line in response.iter_lines()
            if line.startswith("data: ")
        ]
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) >= 2 and events[-1]["type"] == "speech.audio.done"


def test_speed_and_language_are_honoured(live: LiveServer) -> None:
    with live.http() as http:
        slow = http.post(
            "/v1/audio/speech",
            json={
                "model": MODEL,
                "voice": SPEAKERS[0],
                "input": "Guten Tag.",
                "speed": 0.5,
                "response_format": "pcm",
                "language": "de",
            },
        )
        fast = http.post(
            "/v1/audio/speech",
            json={
                "model": MODEL,
                "voice": SPEAKERS[0],
                "input": "Guten Tag.",
                "speed": 2.0,
                "response_format": "pcm",
                "language": "de",
            },
        )
    assert slow.status_code == fast.status_code == 200
    # The same 12 tokens stretched 2x versus squeezed 2x: about 4x as many samples.
    assert len(slow.content) > 2.5 * len(fast.content)


def test_bad_requests_are_refused_before_any_audio(live: LiveServer) -> None:
    client = live.client()
    with pytest.raises(openai.BadRequestError) as unknown:
        client.audio.speech.create(model=MODEL, voice="nobody", input="Hello.")  # type: ignore[arg-type]
    assert "nobody" in unknown.value.message and SPEAKERS[0] in unknown.value.message
    with live.http() as http:
        japanese = http.post(
            "/v1/audio/speech",
            json={"model": MODEL, "voice": SPEAKERS[0], "input": "Hello.", "language": "ja"},
        )
    assert japanese.status_code == 400
    assert japanese.json()["error"]["param"] == "language"
    assert all(code in japanese.json()["error"]["message"] for code in LANGUAGES)
    live.assert_healthy()


def test_torch_is_in_the_worker_never_in_the_server(live: LiveServer) -> None:
    with live.http() as http:
        assert (
            http.post(
                "/v1/audio/speech", json={"model": MODEL, "voice": SPEAKERS[0], "input": "Hi."}
            ).status_code
            == 200
        )
    server = live.process.pid
    workers = [pid for pid in child_pids(server) if "libtorch" in mapped_files(pid)]
    assert workers, "no worker process has torch loaded"
    assert "libtorch" not in mapped_files(server) and "torch" not in mapped_files(server)
    interpreter = Path(f"/proc/{workers[0]}/cmdline").read_bytes().split(b"\0")[0].decode()
    assert interpreter == str(live.data_dir / "envs" / "xtts" / "bin" / "python")


def test_a_cloned_voice_round_trip(live: LiveServer, speech: dict[str, SpeechSample]) -> None:
    """Clone from a human recording, speak with it (by name and by id), then delete it."""
    client = live.client()
    with speech["beckett"].path.open("rb") as recording:
        voice = client.audio.voices.create(name="beckett", audio_sample=recording, consent="c")
    text = "Ever tried. Ever failed."
    spoken = {
        "builtin": client.audio.speech.create(
            model=MODEL,
            voice=SPEAKERS[0],
            input=text,
            response_format="pcm",  # type: ignore[arg-type]
        ).content,
        "by name": client.audio.speech.create(
            model=MODEL,
            voice="beckett",
            input=text,
            response_format="pcm",  # type: ignore[arg-type]
        ).content,
        "by id": client.audio.speech.create(
            model=MODEL,
            voice={"id": voice.id},
            input=text,
            response_format="pcm",  # type: ignore[arg-type]
        ).content,
    }
    # Every sentence is exactly nine audio tokens whatever the voice: equal lengths show the
    # cloned voice went through the whole of XTTS, conditioning included.
    assert len(spoken["by name"]) == len(spoken["by id"]) == len(spoken["builtin"]) > 10_000
    assert spoken["by name"] != spoken["builtin"]

    assert client.audio.voices.delete(voice.id).deleted is True
    with pytest.raises(openai.BadRequestError) as gone:
        client.audio.speech.create(model=MODEL, voice="beckett", input="Hi.")  # type: ignore[arg-type]
    assert gone.value.code == "voice_not_found"
    live.assert_healthy()


def test_the_command_line_clones_and_speaks_without_a_server(
    live: LiveServer, speech: dict[str, SpeechSample], tmp_path: Path
) -> None:
    """``bragi voices add`` then ``bragi speak --voice``: the engine runs in a worker from
    the same environment, in the command's own process tree."""
    config = live.data_dir.parent / "config.yaml"
    common = ["--config", str(config), "--data-dir", str(live.data_dir)]
    bragi = [sys.executable, "-m", "bragi"]
    offline = os.environ | {"HF_HUB_OFFLINE": "1"}  # the model is in the cache already
    added = subprocess.run(
        [*bragi, "voices", "add", "reader", str(speech["beckett"].path), *common],
        capture_output=True,
        text=True,
        timeout=120,
        env=offline,
    )
    assert added.returncode == 0, added.stderr
    out = tmp_path / "reader.wav"
    speak = [*bragi, "speak", "--model", MODEL, "--voice", "reader", "-o", str(out), *common]
    spoken = subprocess.run(
        [*speak, "--language", "fr", "Ever tried."],
        capture_output=True,
        text=True,
        timeout=300,
        env=offline,
    )
    assert spoken.returncode == 0, spoken.stderr
    with wave.open(str(out)) as audio:
        assert audio.getframerate() == 24_000 and audio.getnframes() > 5_000
    refused = subprocess.run(
        [*speak, "--language", "ja", "Hi."],
        capture_output=True,
        text=True,
        timeout=300,
        env=offline,
    )
    assert refused.returncode != 0 and "ja" in refused.stderr and "Traceback" not in refused.stderr
    removed = subprocess.run(
        [*bragi, "voices", "rm", "reader", *common],
        capture_output=True,
        text=True,
        timeout=60,
        env=offline,
    )
    assert removed.returncode == 0, removed.stderr
