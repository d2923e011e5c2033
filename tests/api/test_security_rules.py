"""The rules of docs/security.md, checked against the real app: the route table (read from
the document itself) covers every route and says what each needs; stored secrets are
readable by the service user only; each documented input limit is enforced with the
documented status."""

from __future__ import annotations

import re
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from appserver import AppServer, fake_settings, serve_app
from bragi.config import ModelConfig
from fakes import FakeCloningTtsBackend, FakeSttBackend, make_model_dir, sine, wav_bytes, wav_of

SECURITY_DOC = Path(__file__).parents[2] / "docs" / "security.md"
_ROW = re.compile(r"^\| `(GET|POST|DELETE|PUT|PATCH) ([^`]+)` \| (none|user key|admin key) \|$")
UPLOAD_LIMIT_MB = 2
#: A value for each path parameter, naming things that exist (or a catalog name).
PATH_VALUES = {"model_id": "stt", "alias": "stt", "name": "whisper-tiny", "voice_id": "nobody"}


def documented_routes() -> dict[tuple[str, str], str]:
    rows = [_ROW.match(line) for line in SECURITY_DOC.read_text().splitlines()]
    return {(m[1], m[2]): m[3] for m in rows if m}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("security")
    models = {
        "stt": ModelConfig(model=str(make_model_dir(root, "fake-stt"))),
        "clone": ModelConfig(model=str(make_model_dir(root, "fake-clone"))),
    }
    settings = fake_settings(root / "data", models, upload_limit_mb=UPLOAD_LIMIT_MB)
    with serve_app(settings, [FakeSttBackend(), FakeCloningTtsBackend()]) as live:
        yield live


def app_routes(server: AppServer) -> set[tuple[str, str]]:
    routes = {
        (method.upper(), path)
        for path, operations in server.app.openapi()["paths"].items()
        for method in operations
    }
    for route in server.app.routes:  # the schema and docs pages FastAPI adds
        if isinstance(route, Route) and not route.include_in_schema:
            routes |= {(m, route.path) for m in route.methods or () if m != "HEAD"}
    return routes


def test_the_documented_route_table_is_every_route_there_is(server: AppServer) -> None:
    assert documented_routes(), "docs/security.md has its route table"
    assert set(documented_routes()) == app_routes(server)


@pytest.mark.parametrize(
    ("method", "path", "needs"), [(*k, v) for k, v in documented_routes().items()]
)
def test_each_route_needs_what_the_table_says(
    server: AppServer, method: str, path: str, needs: str
) -> None:
    url = path.format(**PATH_VALUES)

    def status(key: str | None) -> int:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
            return http.request(method, url).status_code

    anonymous, user, admin = status(None), status(server.user_key), status(server.admin_key)
    if needs == "none":
        assert anonymous not in (401, 403), (method, path, anonymous)
        return
    assert anonymous == 401
    if needs == "user key":
        assert user not in (401, 403) and admin not in (401, 403), (user, admin)
    else:
        assert user == 403 and admin not in (401, 403), (user, admin)


def test_an_over_long_key_is_refused_unread(server: AppServer) -> None:
    key = server.user_key + "x" * 300
    with server.http(key) as http:
        assert http.get("/v1/models").status_code == 401


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_and_voices_are_readable_by_the_service_user_only(server: AppServer) -> None:
    data = server.settings.data_dir
    recording = wav_of(sine(2.0, 24_000).samples, 24_000)
    with server.http() as http:
        created = http.post(
            "/v1/audio/voices",
            data={"name": "modes"},
            files={"audio_sample": ("a.wav", recording, "audio/wav")},
        )
        assert created.status_code == 200, created.text
    voices = data / "voices"
    voice = voices / created.json()["id"]
    assert mode(data) == 0o700
    key_files = sorted(data.glob("keys.db*"))
    assert key_files and {mode(p) for p in key_files} == {0o600}, key_files
    assert mode(voices) == 0o700 and mode(voice) == 0o700
    assert sorted(p.name for p in voice.iterdir()) == ["reference.flac", "voice.json"]
    assert {mode(p) for p in voice.iterdir()} == {0o600}


def test_a_voices_directory_an_older_bragi_left_open_is_narrowed(server: AppServer) -> None:
    voices = server.settings.data_dir / "voices"
    voices.mkdir(exist_ok=True)
    voices.chmod(0o755)
    recording = wav_of(sine(2.0, 24_000).samples, 24_000)
    with server.http() as http:
        created = http.post(
            "/v1/audio/voices",
            data={"name": "narrowed"},
            files={"audio_sample": ("a.wav", recording, "audio/wav")},
        )
        assert created.status_code == 200, created.text
    assert mode(voices) == 0o700


def wav_claiming(rate: int) -> bytes:
    """A second of 16 kHz tone in a WAV whose header says ``rate``."""
    data = (sine(1.0, 16_000).samples * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data))
    return b"RIFF" + struct.pack("<I", len(body) + len(data)) + body + data


FORM = {"model": "stt"}
AUDIO = {"file": ("a.wav", wav_bytes(0.5), "audio/wav")}
SPEECH = {"model": "clone", "voice": "af_alloy", "input": "Hello."}
LIMITS = {
    "a body over upload_limit_mb": (
        "POST",
        "/v1/audio/transcriptions",
        {"data": FORM, "files": {"file": ("big.wav", b"\0" * (UPLOAD_LIMIT_MB << 20))}},
        413,
        "payload_too_large",
    ),
    "speech input over 4096 characters": (
        "POST",
        "/v1/audio/speech",
        {"json": SPEECH | {"input": "a" * 4097}},
        400,
        None,
    ),
    "instructions over 4096 characters": (
        "POST",
        "/v1/audio/speech",
        {"json": SPEECH | {"instructions": "a" * 4097}},
        400,
        None,
    ),
    "speed past 4.0": ("POST", "/v1/audio/speech", {"json": SPEECH | {"speed": 4.5}}, 400, None),
    "a language over 35 characters": (
        "POST",
        "/v1/audio/speech",
        {"json": SPEECH | {"language": "x" * 36}},
        400,
        None,
    ),
    "an unknown speech field": (
        "POST",
        "/v1/audio/speech",
        {"json": SPEECH | {"volume": 11}},
        400,
        None,
    ),
    "three files in a form": (
        "POST",
        "/v1/audio/transcriptions",
        {"data": FORM, "files": [("file", AUDIO["file"])] * 3},
        400,
        None,
    ),
    "65 fields in a form": (
        "POST",
        "/v1/audio/transcriptions",
        {"data": FORM | {f"field{i}": "x" for i in range(64)}, "files": AUDIO},
        400,
        None,
    ),
    "a text field over 1 MiB": (
        "POST",
        "/v1/audio/transcriptions",
        {"data": FORM | {"prompt": "x" * (1024 * 1024 + 1)}, "files": AUDIO},
        400,
        None,
    ),
    "a voice name over 64 characters": (
        "POST",
        "/v1/audio/voices",
        {"data": {"name": "a" * 65}, "files": {"audio_sample": AUDIO["file"]}},
        400,
        "invalid_voice_name",
    ),
    "audio claiming a 1 Hz sample rate": (
        "POST",
        "/v1/audio/transcriptions",
        {"data": FORM, "files": {"file": ("x.wav", wav_claiming(1), "audio/wav")}},
        400,
        "invalid_audio",
    ),
}


@pytest.mark.parametrize("limit", sorted(LIMITS))
def test_each_documented_limit_is_enforced(server: AppServer, limit: str) -> None:
    method, path, request, expected, code = LIMITS[limit]
    with server.http() as http:
        response = http.request(method, path, **request)  # type: ignore[arg-type]
    assert response.status_code == expected, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code, error
