"""The diarizer and its embedding model from the (stand-in) hub, pulled as one: by
`bragi pull` (after which the starter set serves it) and by the admin API; `bragi list`
and `bragi rm` on them. The repos hold tiny models in sherpa-onnx's formats under the real
repo and file names of the catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bragi.diarization.backend import BACKEND, DiarizationOptions
from bragi.errors import ModelUnavailableError
from hubstub import HubStub
from livesupport import start_server
from speech import SpeechSample
from tinymodels.diarization import write_embedding, write_segmentation

pytestmark = pytest.mark.slow

SEGMENTATION_REPO = "csukuangfj/sherpa-onnx-pyannote-segmentation-3-0"
EMBEDDING_REPO = "csukuangfj/speaker-embedding-models"
ENGLISH = "3dspeaker_speech_campplus_sv_en_voxceleb_16k.onnx"  # campplus-en-voxceleb
BILINGUAL = "3dspeaker_speech_campplus_sv_zh_en_16k-common_advanced.onnx"  # campplus-zh-en


@pytest.fixture
def diarizer_hub(hub_stub: HubStub, tmp_path: Path) -> HubStub:
    write_segmentation(tmp_path / "segmentation")
    write_embedding(tmp_path / "embeddings", filename=ENGLISH, seed=1)
    write_embedding(tmp_path / "embeddings", filename=BILINGUAL, seed=2)
    hub_stub.add_repo(SEGMENTATION_REPO, tmp_path / "segmentation")
    hub_stub.add_repo(EMBEDDING_REPO, tmp_path / "embeddings")
    return hub_stub


def _bragi(
    *args: str, data_dir: Path, endpoint: str, models: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRAGI_", "HF_"))}
    env |= {"BRAGI_DATA_DIR": str(data_dir), "HF_ENDPOINT": endpoint}
    if models is not None:
        env["BRAGI_MODEL_CACHE_DIR"] = str(models)
    return subprocess.run(
        [sys.executable, "-m", "bragi", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_pull_brings_the_embedding_model_list_and_rm(diarizer_hub: HubStub, tmp_path: Path) -> None:
    data, url = tmp_path / "data", diarizer_hub.url
    pulled = _bragi("pull", "pyannote-segmentation-3.0", data_dir=data, endpoint=url)
    assert pulled.returncode == 0, pulled.stderr
    assert "pulling its embedding model campplus-en-voxceleb" in pulled.stderr
    assert (Path(pulled.stdout.strip()) / "model.onnx").is_file()
    # only the file the catalog entry names, not the other model in the same repo
    assert diarizer_hub.content_gets(ENGLISH) and not diarizer_hub.content_gets(BILINGUAL)

    listed = _bragi("list", data_dir=data, endpoint=url).stdout
    for repo in (SEGMENTATION_REPO, EMBEDDING_REPO):
        line = next(line for line in listed.splitlines() if repo in line)
        assert "sherpa-diarization" in line, listed

    removed = _bragi("rm", "pyannote-segmentation-3.0", data_dir=data, endpoint=url)
    assert removed.returncode == 0, removed.stderr
    assert "kept its embedding model campplus-en-voxceleb" in removed.stdout
    listed = _bragi("list", data_dir=data, endpoint=url).stdout
    assert SEGMENTATION_REPO not in listed and EMBEDDING_REPO in listed

    # the two CAM++ entries share a repo: removing one leaves the other's file
    assert _bragi("pull", "campplus-zh-en", data_dir=data, endpoint=url).returncode == 0
    removed = _bragi("rm", "campplus-en-voxceleb", data_dir=data, endpoint=url)
    assert removed.returncode == 0, removed.stderr
    assert ENGLISH in removed.stdout and BILINGUAL not in removed.stdout, removed.stdout
    assert EMBEDDING_REPO in _bragi("list", data_dir=data, endpoint=url).stdout
    assert list((data / "models").rglob(BILINGUAL)) and not list((data / "models").rglob(ENGLISH))


def test_an_embedding_model_alone_is_not_a_diarizer(diarizer_hub: HubStub, tmp_path: Path) -> None:
    shown = _bragi(
        "show", "pyannote-segmentation-3.0", data_dir=tmp_path, endpoint=diarizer_hub.url
    )
    assert '"embedding": "campplus-en-voxceleb"' in shown.stdout
    pulled = _bragi("pull", "campplus-en-voxceleb", data_dir=tmp_path, endpoint=diarizer_hub.url)
    assert pulled.returncode == 0, pulled.stderr
    with pytest.raises(ModelUnavailableError, match="speaker-embedding model, which is not served"):
        BACKEND.load(Path(pulled.stdout.strip()), "cpu", DiarizationOptions(threads=1))


def test_the_starter_set_serves_the_diarizer_once_pulled(
    diarizer_hub: HubStub, tmp_path: Path, speech: dict[str, SpeechSample]
) -> None:
    """No config: the starter set has no `diarizer` until one is pulled (it never starts a
    download by itself), then serves it, and OpenAI's diarizing name works with it."""
    env = {"HF_ENDPOINT": diarizer_hub.url, "HF_HUB_OFFLINE": "0"}
    with start_server(tmp_path / "before", tmp_path / "models", env=env) as server:
        assert "diarizer" not in {m.id for m in server.client().models.list()}
    assert not diarizer_hub.content_gets("model.onnx")
    pulled = _bragi(
        "pull",
        "pyannote-segmentation-3.0",
        data_dir=tmp_path / "data",
        endpoint=diarizer_hub.url,
        models=tmp_path / "models",
    )
    assert pulled.returncode == 0, pulled.stderr
    with start_server(tmp_path / "data", tmp_path / "models", env=env) as server:
        client = server.client()
        described = client.models.retrieve("diarizer").model_dump()
        assert described["kind"] == "diarization" and described["backend"] == "sherpa-diarization"
        result = client.audio.transcriptions.create(
            model="gpt-4o-transcribe-diarize",
            file=speech["beckett"].path,
            response_format="diarized_json",
        )
        assert result.task == "transcribe" and result.segments
        assert all(s.speaker and s.type == "transcript.text.segment" for s in result.segments)
        # the admin API's pull brings the embedding model too
        http = server.http()
        assert http.delete("/admin/models/campplus-en-voxceleb").status_code == 200
        pulled = http.post("/admin/pull", json={"model": "pyannote-segmentation-3.0"}, timeout=60)
        events = [json.loads(line) for line in pulled.text.splitlines()]
        assert {
            "status": "pulling",
            "source": f"hub repo {EMBEDDING_REPO}",
            "for": "embedding",
        } in events
        assert events[-1]["status"] == "success", events
        assert len(diarizer_hub.content_gets(ENGLISH)) == 2
    assert diarizer_hub.content_gets("model.onnx") and diarizer_hub.content_gets(ENGLISH)
