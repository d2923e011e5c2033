"""Voice cloning end to end: a real ``bragi serve`` subprocess, the official openai client,
real speech as the reference, and a cloning engine in a worker process.

The engine is the scripted cloner from ``tests/runners/childfakes.py``, registered as a
``bragi.backends`` entry point through a dist-info directory on the server's path, and
run with ``runner: worker``: it logs the reference it receives, so the test sees that
the stored recording crossed the worker protocol sample for sample.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import openai
import pytest

from bragi.audio import decode_audio
from fakes import make_model_dir
from livesupport import LiveServer, start_server
from speech import SpeechSample

pytestmark = pytest.mark.slow

TESTS = Path(__file__).parent.parent


def _entry_points(site: Path) -> None:
    """The scripted backends as an installed plugin would declare them."""
    info = site / "bragi_voicefakes-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bragi-voicefakes\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[bragi.backends]\nscript-clone = childfakes:CLONE\nscript-tts = childfakes:TTS\n"
    )


class Deployment:
    """Where a cloning server lives, so it can be started again on the same data dir."""

    def __init__(self, root: Path):
        self.root = root
        site = root / "site"
        _entry_points(site)
        (root / "work").mkdir()
        options = {"workdir": str(root / "work")}
        models = {
            alias: {
                "model": str(make_model_dir(root / "models", backend, alias)),
                "backend": backend,
                "runner": "worker",
                "options": options,
            }
            for alias, backend in {"cloner": "script-clone", "plain": "script-tts"}.items()
        }
        self.config = root / "config.yaml"
        self.config.write_text(json.dumps({"models": models}))  # JSON is YAML
        self.pythonpath = ":".join(str(p) for p in (site, TESTS, TESTS / "runners"))
        self.key = ""

    def events(self) -> list[str]:
        """What the scripted engines logged (``childfakes.Script`` writes this file)."""
        path = self.root / "work" / "events"
        return path.read_text().splitlines() if path.exists() else []

    @contextmanager
    def serve(self) -> Iterator[LiveServer]:
        with start_server(
            self.root / "data",
            self.root / "cache",
            config=self.config,
            env={"PYTHONPATH": self.pythonpath},
        ) as live:
            self.key = self.key or live.api_key  # printed on the first boot only
            live.api_key = self.key
            yield live


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return Deployment(tmp_path_factory.mktemp("voices-e2e"))


@pytest.fixture(scope="module")
def server(deployment: Deployment) -> Iterator[LiveServer]:
    with deployment.serve() as live:
        yield live


def test_clone_use_and_delete_a_voice_across_the_worker_protocol(
    server: LiveServer, deployment: Deployment, speech: dict[str, SpeechSample]
) -> None:
    client = server.client()
    with speech["beckett"].path.open("rb") as recording:
        voice = client.audio.voices.create(
            name="beckett", audio_sample=recording, consent="cons_local"
        )
    assert voice.id.startswith("voice_") and voice.type == "audio_sample"

    audio = client.audio.speech.create(
        model="cloner", voice="beckett", input="Ever tried. Ever failed.", response_format="wav"
    )
    assert audio.content[:4] == b"RIFF" and len(audio.content) > 20_000

    reference_file = server.data_dir / "voices" / voice.id / "reference.flac"
    stored = decode_audio(reference_file.read_bytes(), 24_000)
    total = float(np.abs(stored.samples).sum())
    cloned = [e for e in deployment.events() if e.startswith("clone ")]
    assert cloned == [f"clone {voice.id} 24000 {len(stored.samples)} {total:.3f} beckett None"]
    assert len(stored.samples) == pytest.approx(speech["beckett"].duration * 24_000, rel=0.02)

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="plain", voice="beckett", input="Hello.")
    assert refused.value.code == "unsupported" and "Models that can: cloner." in str(refused.value)
    builtin = client.audio.speech.create(model="plain", voice="alba", input="Still fine.")
    assert builtin.content

    with server.http() as http:
        listed = http.get("/v1/audio/voices").json()["data"]
        assert [v["name"] for v in listed if v["type"] == "audio_sample"] == ["beckett"]
        bad = http.post(
            "/v1/audio/voices",
            data={"name": "noise"},
            files={"audio_sample": ("noise.wav", b"RIFF not really a wav" * 50)},
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_audio"

    assert client.audio.voices.delete(voice.id).deleted is True
    with pytest.raises(openai.BadRequestError) as gone:
        client.audio.speech.create(model="cloner", voice="beckett", input="Hi.")
    assert gone.value.code == "voice_not_found"
    assert [p.name for p in (server.data_dir / "voices").iterdir()] == [".lock"]
    server.assert_healthy()


def test_a_voice_outlives_the_server(
    deployment: Deployment, server: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    with speech["beckett"].path.open("rb") as recording:
        voice = server.client().audio.voices.create(
            name="keeper", audio_sample=recording, consent="c"
        )
    server.process.terminate()
    server.process.wait(timeout=15)
    with deployment.serve() as again:
        with again.http() as http:
            assert http.get(f"/v1/audio/voices/{voice.id}").json()["name"] == "keeper"
        spoken = again.client().audio.speech.create(
            model="cloner", voice={"id": voice.id}, input="Back again."
        )
        assert spoken.content
