"""What the web page needs from the server: the page and its files (caching, gzip, a
CSP), ``GET /v1/me``, ``GET /admin/catalog`` and ``/admin/downloads``, and the abilities
``/v1/models`` reports. Fake engines; the page itself runs in Chromium in tests/web."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from appserver import AppServer, fake_settings, serve_app
from bragi.config import ModelConfig
from fakes import (
    FakeCloningTtsBackend,
    FakeSttBackend,
    FakeTtsBackend,
    FakeWordlessSttBackend,
    make_model_dir,
    wav_bytes,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("web-api")
    models = {
        "stt": ModelConfig(model=str(make_model_dir(root, "fake-stt"))),
        "tts": ModelConfig(model=str(make_model_dir(root, "fake-tts"))),
        "cloner": ModelConfig(model=str(make_model_dir(root, "fake-clone"))),
        "wordless": ModelConfig(model=str(make_model_dir(root, "fake-stt-wordless"))),
    }
    backends = [
        FakeSttBackend(),
        FakeTtsBackend(),
        FakeCloningTtsBackend(),
        FakeWordlessSttBackend(),
    ]
    with serve_app(fake_settings(root / "data", models), backends) as live:
        yield live


def _get(server: AppServer, path: str, **headers: str) -> httpx.Response:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        return http.get(path, headers=headers)


def _sent(server: AppServer, path: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent (httpx would undo the gzip)."""
    with (
        httpx.Client(base_url=server.base_url, timeout=10) as http,
        http.stream("GET", path, headers=headers) as response,
    ):
        return response, b"".join(response.iter_raw())


def _page_files(page: str) -> list[str]:
    return re.findall(r'(?:href|src)="(web/[^"]+)"', page)


def test_the_page_is_served_at_the_root_gzipped_revalidated_and_confined(
    server: AppServer,
) -> None:
    plain = _get(server, "/", **{"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/html")
    assert "content-encoding" not in plain.headers
    assert plain.headers["cache-control"] == "no-cache"
    csp = plain.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert plain.headers["x-content-type-options"] == "nosniff"
    assert '<meta name="bragi-auth" content="enabled">' in plain.text
    assert "__ASSETS__" not in plain.text and "__AUTH__" not in plain.text

    packed, sent = _sent(server, "/", **{"Accept-Encoding": "gzip, br"})
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["vary"]
    assert gzip.decompress(sent) == plain.content
    assert len(sent) < len(plain.content) / 2

    again = _get(server, "/", **{"If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    refused = _get(server, "/", **{"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


def test_every_file_the_page_loads_is_cached_for_good_under_its_version(
    server: AppServer,
) -> None:
    page = _get(server, "/").text
    files = _page_files(page)
    assert {f.rsplit("/", 1)[-1] for f in files} >= {"app.css", "app.js", "icon.svg"}
    version = files[0].split("/")[1]
    seen: set[str] = set()
    pending = list(files)
    while pending:  # the page's files, then every module they import
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        response, sent = _sent(server, f"/{path}", **{"Accept-Encoding": "gzip"})
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        if path.endswith(".js"):
            assert response.headers["content-type"] == "text/javascript; charset=utf-8"
            body = gzip.decompress(sent).decode()
            folder = path.rsplit("/", 1)[0]
            imports = re.findall(r"""(?:from|import\()\s*'\./([\w-]+\.js)'""", body)
            workers = re.findall(r"""new URL\('\./([\w-]+\.js)'""", body)
            pending += [f"{folder}/{name}" for name in imports + workers]
    assert len([p for p in seen if p.endswith(".js")]) >= 12  # every module was reached
    assert all(p.startswith(f"web/{version}/") for p in seen)


@pytest.mark.parametrize(
    "path",
    [
        "/web/000000000000/app.css",  # another version's file
        "/web/{version}/index.html",  # the page is only at /
        "/web/{version}/nothing.js",
        "/web/{version}/%2E%2E/%2E%2E/pyproject.toml",  # encoded, so it reaches the route
        "/web/{version}/js/%2e%2e/%2e%2e/%2e%2e/config.py",
    ],
)
def test_nothing_else_is_served(server: AppServer, path: str) -> None:
    version = _page_files(_get(server, "/").text)[0].split("/")[1]
    response = _get(server, path.format(version=version))
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_the_page_can_be_turned_off(tmp_path: Path) -> None:
    models = {"stt": ModelConfig(model=str(make_model_dir(tmp_path, "fake-stt")))}
    settings = fake_settings(tmp_path / "data", models, web={"enabled": False})
    with serve_app(settings, [FakeSttBackend()]) as live:
        assert _get(live, "/").status_code == 404
        assert live.http().get("/v1/me").status_code == 200  # the API stays


def test_me_says_what_each_key_may_do(server: AppServer) -> None:
    admin = server.http(server.admin_key).get("/v1/me").json()
    assert admin["object"] == "bragi.me" and admin["auth"] is True and admin["admin"] is True
    assert admin["key"]["role"] == "admin" and admin["key"]["name"] == "default"
    assert admin["key"]["prefix"] == server.admin_key[: len(admin["key"]["prefix"])]
    assert server.admin_key not in str(admin)
    user = server.http().get("/v1/me").json()
    assert user["admin"] is False and user["key"] == user["key"] | {"role": "user"}
    assert user["features"] == {"realtime": True}
    for headers in ({}, {"Authorization": "Bearer sk-bragi-wrong"}):
        refused = _get(server, "/v1/me", **headers)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


def test_me_says_whether_the_server_has_the_realtime_endpoint(
    server: AppServer, tmp_path: Path
) -> None:
    """As create_app builds it (the routers are included, not added one by one)."""
    assert server.http().get("/v1/me").json()["features"]["realtime"] is True
    models = {"stt": ModelConfig(model=str(make_model_dir(tmp_path, "fake-stt")))}
    settings = fake_settings(tmp_path / "data", models, realtime={"enabled": False})
    with serve_app(settings, [FakeSttBackend()]) as live:
        assert live.http().get("/v1/me").json()["features"]["realtime"] is False
        with pytest.raises(httpx.HTTPStatusError):  # and indeed it has none
            live.http().post("/v1/realtime/client_secrets", json={}).raise_for_status()


def test_models_say_whether_a_voice_model_clones_and_follows_instructions(
    server: AppServer,
) -> None:
    http = server.http(server.admin_key)
    before = http.get("/v1/models/cloner").json()
    assert (before["cloning"], before["instructions"]) == (True, "none")  # known before loading
    for model in ("tts", "cloner"):
        assert http.post(f"/admin/models/{model}/load").status_code == 200
    tts, cloner = (http.get(f"/v1/models/{m}").json() for m in ("tts", "cloner"))
    assert (tts["cloning"], tts["instructions"]) == (False, "none")
    assert (cloner["cloning"], cloner["instructions"]) == (True, "none")
    assert "cloning" not in http.get("/v1/models/stt").json()


def test_models_say_whether_a_transcription_model_gives_word_times(server: AppServer) -> None:
    """Said before the model loads where its backend can tell (every built-in one), so a
    client asks for words only where they exist, instead of learning it from a 400."""
    http = server.http(server.admin_key)
    assert http.get("/v1/models/wordless").json()["word_timestamps"] is False  # unloaded
    assert http.get("/v1/models/stt").json()["word_timestamps"] is None  # fake-stt cannot say
    for model in ("stt", "wordless"):
        assert http.post(f"/admin/models/{model}/load").status_code == 200
    listed = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert listed["stt"]["word_timestamps"] is True  # the loaded engine says
    assert listed["wordless"]["word_timestamps"] is False
    assert "word_timestamps" not in listed["tts"]  # speech to text only
    asked = {"model": "wordless", "response_format": "verbose_json"}
    words = {"timestamp_granularities[]": "word"}
    files = {"file": ("clip.wav", wav_bytes(1.0), "audio/wav")}
    refused = http.post("/v1/audio/transcriptions", data=asked | words, files=files)
    assert refused.status_code == 400  # what the description said
    assert refused.json()["error"]["param"] == "timestamp_granularities"


def test_the_catalog_says_what_is_on_disk_and_what_serves_it(server: AppServer) -> None:
    entries = server.http(server.admin_key).get("/admin/catalog").json()["data"]
    names = [e["name"] for e in entries]
    assert "whisper-base" in names and "kokoro" in names and len(names) == len(set(names))
    for entry in entries:
        assert entry["kind"] in {"stt", "tts", "diarization"}
        assert entry["source"] in {"pypi", "hub"}
        assert entry["downloaded"] is False and entry["served_as"] == []  # an empty store


def test_downloads_lists_what_is_on_disk_until_it_is_removed(server: AppServer) -> None:
    http = server.http(server.admin_key)
    assert http.get("/admin/downloads").json() == {"object": "list", "data": []}
    packaged = server.settings.models_dir / "packaged"
    make_model_dir(packaged, "fake-stt", "whisper-tiny.en")
    (packaged / ".partial").mkdir()  # a hidden work folder is not a model
    listed = http.get("/admin/downloads").json()["data"]
    assert listed == [
        {
            "name": "whisper-tiny.en",
            "source": "pypi",
            "size_bytes": 3,
            "backends": ["fake-stt"],
            "served_as": [],
        }
    ]
    assert http.delete("/admin/models/whisper-tiny.en").json()["freed_bytes"] == 3
    assert http.get("/admin/downloads").json()["data"] == []
