"""``GET /v1/models`` and ``GET /v1/models/{id}``: self-described models, ids with ``/``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from appserver import AppServer, fake_settings, serve_app
from bragi.config import ModelConfig
from fakes import FakeSttBackend, FakeTtsBackend, make_model_dir, wav_bytes


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("models")
    stt_dir = make_model_dir(root, "fake-stt")
    models = {
        "org/model": ModelConfig(model=str(stt_dir)),
        "whisper-1": ModelConfig(model=str(stt_dir)),
        "tts-1": ModelConfig(model=str(make_model_dir(root, "fake-tts"))),
    }
    with serve_app(
        fake_settings(root / "data", models), [FakeSttBackend(), FakeTtsBackend()]
    ) as live:
        yield live


def test_list_describes_every_model(server: AppServer) -> None:
    page = server.client().models.list()
    models = {model.id: model.model_dump() for model in page.data}
    assert set(models) == {"org/model", "whisper-1", "tts-1"}
    for model in models.values():
        assert model["object"] == "model"
        assert isinstance(model["created"], int) and model["created"] > 0
        assert model["owned_by"]
        assert model["state"] == "available"
    assert (models["whisper-1"]["kind"], models["whisper-1"]["backend"]) == ("stt", "fake-stt")
    assert (models["tts-1"]["kind"], models["tts-1"]["backend"]) == ("tts", "fake-tts")


def test_retrieve_an_id_with_a_slash_through_the_openai_client(server: AppServer) -> None:
    model = server.client().models.retrieve("org/model")
    assert model.id == "org/model"
    assert model.model_dump()["kind"] == "stt"


@pytest.mark.parametrize("path", ["/v1/models/org/model", "/v1/models/org%2Fmodel"])
def test_retrieve_an_id_with_a_slash_raw_or_percent_encoded(server: AppServer, path: str) -> None:
    response = server.http().get(path)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "org/model"
    assert response.json()["backend"] == "fake-stt"


@pytest.mark.parametrize("model_id", ["nope", "org/nope", "org"])
def test_unknown_model_is_404_model_not_found(server: AppServer, model_id: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        server.client().models.retrieve(model_id)
    error = caught.value
    assert error.status_code == 404
    assert error.code == "model_not_found"
    assert error.type == "invalid_request_error"
    assert f"`{model_id}`" in error.message
    body = error.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_state_follows_use(server: AppServer) -> None:
    client = server.client()
    text = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", wav_bytes()))
    assert text.text == "word0 word1 word2"
    assert client.models.retrieve("whisper-1").model_dump()["state"] == "loaded"
    # The other alias of the same files is a model of its own, still unloaded.
    assert client.models.retrieve("org/model").model_dump()["state"] == "available"


def test_a_path_outside_v1_models_is_a_404_in_the_openai_shape(server: AppServer) -> None:
    response = httpx.get(f"{server.base_url}/v1/nothing-here", timeout=10)
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_a_server_that_may_not_download_refuses_a_pull(server: AppServer) -> None:
    assert server.settings.allow_downloads is False
    refused = server.http(server.admin_key).post("/admin/pull", json={"model": "whisper-tiny"})
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "downloads_disabled" and "allow_downloads: false" in error["message"]
    assert server.manager.store.downloads is False  # nor does it fetch in the background
