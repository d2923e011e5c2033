"""The OpenAPI surface, fuzzed: schemathesis generates requests from the app's own schema
(valid ones, and ones that break it) and sends them to a real uvicorn serving Bragi with
fake engines. Every answer must be a non-5xx in OpenAI's error shape, and afterwards the
server must still transcribe, speak and hold no lease.

Seeded (``derandomize``), bounded (:data:`EXAMPLES` per operation and mode), no example
database: the same requests every run. ``BRAGI_FUZZ_SCALE`` multiplies the count for a
longer run by hand.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from appserver import AppServer, fake_settings, serve_app
from bragi.api import create_app
from bragi.api.routes.transcriptions import TranscriptionParams, TranslationParams
from bragi.backends.registry import BackendRegistry
from bragi.config import ModelConfig
from bragi.errors import BragiError, ConfigError
from budget import fuzz_settings
from fakes import (
    FakeCloningTtsBackend,
    FakeSttBackend,
    FakeTtsBackend,
    make_model_dir,
    wait_until,
    wav_bytes,
)
from hubstub import WHISPER_REPO, HubStub

#: Examples per operation and generation mode (positive: valid by the schema; negative:
#: invalid on purpose): 24 operation-modes x 25, 600 requests, about 25 s on 2 cores.
EXAMPLES = 25
ERROR_FIELDS = {"message", "type", "param", "code"}
#: The configured models, drawn now and then in place of the fuzzer's model names
#: (None: keep the fuzzer's), and the fields and path parameters that name a model.
ALIASES = (None, None, "stt", "tts", "clone")
MODEL_FIELDS = {"model", "model_id", "alias"}


#: Review finding M4: a model name that is no catalog name, repo id or directory raised
#: ConfigError, a BragiError with status 500, out of the admin routes. The fix (on
#: wip/core) takes ConfigError out of the HTTP tree; once it is in, these pass.
_M4 = pytest.mark.xfail(
    issubclass(ConfigError, BragiError),
    reason="review M4: ConfigError escapes /admin/pull and DELETE /admin/models as a 500",
    strict=True,
)
_M4_ROUTES = {"/admin/pull", "/admin/models/{name}"}
#: Routes whose multipart body only the fuzzer's copy of the schema describes.
_FORM_ROUTES = {"/v1/audio/transcriptions", "/v1/audio/translations"}


def _fuzz_targets() -> list[Any]:
    """(METHOD, path, mode) for every operation in the app's schema, read at collection
    time, so a route added later is fuzzed without touching this file. Requests that
    break the schema (negative mode) go only to operations that take a body or a query:
    nothing breaks a schema of free-form path strings."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            fake_settings(Path(tmp), {}, auth="disabled"), registry=BackendRegistry([])
        )
        paths = app.openapi()["paths"]
    targets = []
    for path, operations in paths.items():
        for method, operation in operations.items():
            query = any(p["in"] == "query" for p in operation.get("parameters", []))
            modes = [GenerationMode.POSITIVE]
            if "requestBody" in operation or query or path in _FORM_ROUTES:
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                marks = _M4 if path in _M4_ROUTES else ()
                name = f"{method.upper()} {path} {mode.value}"
                targets.append(pytest.param(method.upper(), path, mode, id=name, marks=marks))
    return targets


FUZZ_TARGETS = _fuzz_targets()


def _form_schema(params: type[Any]) -> dict[str, Any]:
    """A multipart body for the transcription routes: their form fields plus ``file``.
    The routes read the form themselves (after the key check), so FastAPI cannot
    describe it; the fuzzer needs it described."""
    schema = params.model_json_schema()
    properties = dict(schema["properties"]) | {"file": {"type": "string", "format": "binary"}}
    if "chunking_strategy" in properties:
        # a form carries it as text ("auto" or a JSON object); schemathesis cannot build
        # requests that break an anyOf of a const, a $ref'd object and null in a form
        properties["chunking_strategy"] = {"type": "string"}
    if "timestamp_granularities" in properties:
        properties["timestamp_granularities[]"] = properties.pop("timestamp_granularities")
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["model", "file"],
                    "properties": properties,
                    "$defs": schema.get("$defs", {}),
                }
            }
        },
    }


def fuzzable_schema(spec: dict[str, Any]) -> dict[str, Any]:
    spec = json.loads(json.dumps(spec))
    for path, params in (
        ("/v1/audio/transcriptions", TranscriptionParams),
        ("/v1/audio/translations", TranslationParams),
    ):
        operation = spec["paths"][path]["post"]
        operation.setdefault("requestBody", _form_schema(params))
    return spec


@pytest.fixture(scope="module")
def hub(whisper_repo_dir: Path) -> Iterator[HubStub]:
    """A stand-in hub, so a fuzzed pull reaches a hub (and its 404s) without a network."""
    stub = HubStub()
    stub.add_repo(WHISPER_REPO, whisper_repo_dir)
    stub.start()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_ENDPOINT", stub.url)
        for name in ("HF_TOKEN", "HF_HUB_OFFLINE"):
            env.delenv(name, raising=False)
        yield stub
    stub.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, hub: HubStub) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("fuzz")
    models = {
        "stt": ModelConfig(model=str(make_model_dir(root, "fake-stt"))),
        "tts": ModelConfig(model=str(make_model_dir(root, "fake-tts"))),
        "clone": ModelConfig(model=str(make_model_dir(root, "fake-clone"))),
    }
    settings_ = fake_settings(root / "data", models, upload_limit_mb=1)
    backends = [FakeSttBackend(), FakeTtsBackend(), FakeCloningTtsBackend()]
    with serve_app(settings_, backends) as live:
        yield live


@pytest.fixture(scope="module")
def schema(server: AppServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_dict(fuzzable_schema(server.app.openapi()))


def name_a_model(case: schemathesis.Case, alias: str) -> None:
    """Put a configured model's alias where the case names a model, if it does."""
    for part in (case.body, case.query, case.path_parameters):
        if isinstance(part, dict):
            for key in MODEL_FIELDS & part.keys():
                part[key] = alias


def check_answer(response: schemathesis.Response) -> None:
    """Not a 5xx; an error in OpenAI's shape; a pull's stream ends in a verdict."""
    where = f"{response.request.method} {response.request.path_url}"
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:500]}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == ERROR_FIELDS, f"{where}: {error}"
        assert isinstance(error["message"], str) and error["message"], where
    elif response.headers.get("content-type", [""])[0].startswith("application/x-ndjson"):
        events = [json.loads(line) for line in response.text.splitlines()]
        assert events[-1]["status"] in {"success", "error"}, f"{where}: {events}"


def assert_still_serves(server: AppServer) -> None:
    """Health, a transcription and a speech request work, and no request holds a lease."""
    server.assert_healthy()
    with server.http() as http:
        files = {"file": ("tone.wav", wav_bytes(0.5), "audio/wav")}
        heard = http.post("/v1/audio/transcriptions", data={"model": "stt"}, files=files)
        assert heard.status_code == 200, heard.text
        assert heard.json()["text"] == "word0 word1 word2"
        spoken = http.post(
            "/v1/audio/speech",
            json={"model": "tts", "voice": "af_alloy", "input": "Hi.", "response_format": "wav"},
        )
        assert spoken.status_code == 200, spoken.text
        assert spoken.content[:4] == b"RIFF"
    # A streamed body's lease goes back just after its last byte: wait for it, bounded.
    wait_until(
        lambda: all(model.in_use == 0 for model in server.manager.models()),
        10,
        "every lease to be released after the fuzzing",
    )


@pytest.mark.parametrize(("method", "path", "mode"), FUZZ_TARGETS)
def test_every_operation_answers_fuzzed_requests_in_openai_shape(
    server: AppServer,
    schema: schemathesis.BaseSchema,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = schema[path][method]
    session = requests.Session()
    headers = {"Authorization": f"Bearer {server.admin_key}"}  # admin: reach every route
    sent = 0

    @given(case=operation.as_strategy(generation_mode=mode), alias=st.sampled_from(ALIASES))
    @fuzz_settings(EXAMPLES)
    def fuzz(case: schemathesis.Case, alias: str | None) -> None:
        nonlocal sent
        sent += 1
        if alias is not None:  # now and then a model that exists, to get past the 404
            name_a_model(case, alias)
        check_answer(
            case.call(base_url=server.base_url, session=session, headers=headers, timeout=30)
        )

    try:
        fuzz()
    finally:
        session.close()
    assert sent > 0
    assert_still_serves(server)


def test_a_key_is_checked_before_a_fuzzed_body_is_read(server: AppServer) -> None:
    """A garbage body without a key is a 401, not a 400 that says what the body lacks."""
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        for route in ("/v1/audio/speech", "/v1/audio/transcriptions", "/admin/pull"):
            response = http.post(route, content=b"\xff\xfe{not json")
            assert response.status_code == 401, (route, response.text)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_ref_in_the_served_schema_points_somewhere(server: AppServer) -> None:
    """Regression (found by this fuzzing): the speech body's schema pointed at
    ``#/$defs/VoiceRef``, which is in pydantic's schema but not in the OpenAPI document,
    so schema-driven clients (and the fuzzer) could not build a request with a voice."""
    document = httpx.get(f"{server.base_url}/openapi.json", timeout=10).json()
    refs = set(_refs(document))
    assert refs, "the schema has references to check"
    for ref in refs:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, f"{ref} points at nothing"
            node = node[part]
