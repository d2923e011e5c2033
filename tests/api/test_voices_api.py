"""Cloned voices over HTTP against fake engines: create, list, read, use, delete, and every
kind of bad reference recording refused with a 400 (or 413) that leaves nothing on disk.

``clone`` is a fake engine that clones voices and records the
:class:`~bragi.backends.protocol.VoiceReference` each request carried; ``tts`` cannot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from appserver import AppServer, fake_settings, serve_app
from bragi.audio import decode_audio
from bragi.backends.protocol import TimedText
from bragi.config import ModelConfig, VoiceMapping
from bragi.voices import STORED_SAMPLE_RATE, VoiceStore
from fakes import (
    FakeCloningTtsBackend,
    FakeSttBackend,
    FakeTtsBackend,
    make_model_dir,
    sine,
    wav_of,
)
from speech import SpeechSample, reencode

#: Small limits, so "too long" and "too big" need small files.
MAX_SECONDS = 12.0
UPLOAD_LIMIT_MB = 0.5


def tone(seconds: float, level: float = 0.3) -> bytes:
    return wav_of(sine(seconds, 16_000).samples / 0.3 * level)


@pytest.fixture(scope="module")
def cloner() -> FakeCloningTtsBackend:
    return FakeCloningTtsBackend()


@pytest.fixture(scope="module")
def plain_tts() -> FakeTtsBackend:
    return FakeTtsBackend()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    cloner: FakeCloningTtsBackend,
    plain_tts: FakeTtsBackend,
) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("voices")
    models = {
        "clone": ModelConfig(model=str(make_model_dir(root, "fake-clone"))),
        "tts": ModelConfig(model=str(make_model_dir(root, "fake-tts"))),
        "stt": ModelConfig(model=str(make_model_dir(root, "fake-stt"))),
    }
    settings = fake_settings(
        root / "data",
        models,
        voices={"narrator": VoiceMapping(model="tts", voice="bf_emma")},
        voice_max_seconds=MAX_SECONDS,
        voice_upload_limit_mb=UPLOAD_LIMIT_MB,
    )
    with serve_app(settings, [cloner, plain_tts, FakeSttBackend()]) as live:
        yield live


@pytest.fixture(scope="module")
def listener() -> FakeSttBackend:
    return FakeSttBackend()


@pytest.fixture(scope="module")
def transcribing(
    tmp_path_factory: pytest.TempPathFactory,
    cloner: FakeCloningTtsBackend,
    listener: FakeSttBackend,
) -> Iterator[AppServer]:
    """A server whose ``voice_transcription_model`` is its fake speech-to-text model."""
    root = tmp_path_factory.mktemp("transcribing")
    models = {
        "clone": ModelConfig(model=str(make_model_dir(root, "fake-clone"))),
        "ears": ModelConfig(model=str(make_model_dir(root, "fake-stt"))),
    }
    settings = fake_settings(root / "data", models, voice_transcription_model="ears")
    with serve_app(settings, [cloner, listener]) as live:
        yield live


@pytest.fixture
def store(server: AppServer) -> Iterator[VoiceStore]:
    """The server's voice store, emptied after each test."""
    voices: VoiceStore = server.app.state.voices
    yield voices
    for voice in voices.list():
        voices.delete(voice.id)


@pytest.fixture(scope="module")
def beckett(speech: dict[str, SpeechSample]) -> bytes:
    """10 s of real speech as a stereo 48 kHz MP3 (decoded to mono 24 kHz when stored)."""
    return reencode(speech["beckett"].path, "mp3", "libmp3lame", rate=48_000, channels=2)


@pytest.fixture
def client(server: AppServer) -> openai.OpenAI:
    return server.client()


def stored_entries(store: VoiceStore) -> list[str]:
    """What the voice directory holds, lock file aside."""
    if not store.root.is_dir():
        return []
    return sorted(p.name for p in store.root.iterdir() if p.name != ".lock")


def create(http: httpx.Client, data: dict[str, str], audio: bytes | None) -> httpx.Response:
    files = {"audio_sample": ("ref.wav", audio, "audio/wav")} if audio is not None else None
    return http.post("/v1/audio/voices", data=data, files=files)


def assert_error(response: httpx.Response, status: int, code: str | None, *words: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], error["message"]


# --- the round trip -----------------------------------------------------------------


def test_create_list_use_and_delete_through_the_openai_client(
    server: AppServer,
    client: openai.OpenAI,
    store: VoiceStore,
    cloner: FakeCloningTtsBackend,
    beckett: bytes,
) -> None:
    voice = client.audio.voices.create(
        name="beckett", audio_sample=("beckett.mp3", beckett, "audio/mpeg"), consent="cons_1"
    )
    assert voice.id.startswith("voice_") and voice.name == "beckett"
    assert voice.object == "audio.voice" and voice.type == "audio_sample"
    assert isinstance(voice.created_at, int)
    extra = voice.model_dump()
    assert extra["sample_rate"] == STORED_SAMPLE_RATE and extra["transcript"] is None
    assert extra["transcribed_by"] is None  # no whisper-1 here: stored without one
    assert extra["duration"] == pytest.approx(10.0, abs=0.2)
    assert stored_entries(store) == [voice.id]

    http = server.http()
    listed = http.get("/v1/audio/voices").json()["data"]
    cloned = [v for v in listed if v.get("type") == "audio_sample"]
    assert [v["id"] for v in cloned] == [voice.id]
    assert {v["type"] for v in listed} == {"builtin", "audio_sample"}
    assert http.get(f"/v1/audio/voices/{voice.id}").json() == cloned[0]
    assert http.get("/v1/audio/voices/beckett").json()["id"] == voice.id

    speech = client.audio.speech.create(
        model="clone", voice="beckett", input="Hello there. Bye.", response_format="wav"
    )
    assert speech.content[:4] == b"RIFF"
    request = cloner.requests[-1]
    assert request.voice == "beckett" and request.reference is not None
    reference = request.reference
    assert reference.id == voice.id and reference.transcript is None
    assert reference.audio.sample_rate == STORED_SAMPLE_RATE
    on_disk = decode_audio((store.root / voice.id / "reference.flac").read_bytes(), 24_000)
    assert len(reference.audio.samples) == len(on_disk.samples)
    assert len(reference.audio.samples) == pytest.approx(10.0 * STORED_SAMPLE_RATE, rel=0.02)

    by_id = client.audio.speech.create(
        model="clone", voice={"id": voice.id}, input="Again.", response_format="pcm"
    )
    assert by_id.content and cloner.requests[-1].reference is not None

    deleted = client.audio.voices.delete(voice.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (voice.id, True, "audio.voice.deleted")
    assert stored_entries(store) == []
    with pytest.raises(openai.BadRequestError) as gone:
        client.audio.speech.create(model="clone", voice="beckett", input="Hi.")
    assert gone.value.code == "voice_not_found"
    assert http.get(f"/v1/audio/voices/{voice.id}").status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.audio.voices.delete(voice.id)


def test_file_field_transcript_and_model_reach_the_engine(
    server: AppServer, store: VoiceStore, cloner: FakeCloningTtsBackend, beckett: bytes
) -> None:
    http = server.http()
    response = http.post(
        "/v1/audio/voices",
        data={"name": "Sam", "transcript": "  Ever tried. Ever failed.  ", "model": "clone"},
        files={"file": ("beckett.mp3", beckett)},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["transcript"], body["model"]) == (
        "Sam",
        "Ever tried. Ever failed.",
        "clone",
    )
    speech = http.post(
        "/v1/audio/speech",
        json={"model": "clone", "voice": "sam", "input": "Names match in any case."},
    )
    assert speech.status_code == 200, speech.text
    reference = cloner.requests[-1].reference
    assert reference is not None and reference.transcript == "Ever tried. Ever failed."
    assert cloner.requests[-1].voice == "Sam"


def test_a_recording_without_a_transcript_is_transcribed_once_with_times(
    transcribing: AppServer,
    cloner: FakeCloningTtsBackend,
    listener: FakeSttBackend,
    beckett: bytes,
) -> None:
    http = transcribing.http()
    calls = len(listener.calls)
    created = create(http, {"name": "heard"}, beckett)
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["transcript"] == "word0 word1 word2" and body["transcribed_by"] == "ears"
    assert len(listener.calls) == calls + 1
    assert listener.calls[-1].duration == pytest.approx(10.0, abs=0.2)  # the whole recording
    for _ in range(2):
        speech = http.post(
            "/v1/audio/speech", json={"model": "clone", "voice": "heard", "input": "Hi."}
        )
        assert speech.status_code == 200, speech.text
    reference = cloner.requests[-1].reference
    assert reference is not None and reference.transcript == "word0 word1 word2"
    assert reference.timed_transcript == (
        TimedText(0.0, 0.5, "word0"),
        TimedText(0.5, 1.0, "word1"),
        TimedText(1.0, 1.5, "word2"),
    )
    assert len(listener.calls) == calls + 1  # once, at creation

    given = create(http, {"name": "told", "transcript": "Ever tried."}, beckett)
    assert given.json()["transcript"] == "Ever tried." and given.json()["transcribed_by"] is None
    assert len(listener.calls) == calls + 1
    for name in ("heard", "told"):
        assert http.delete(f"/v1/audio/voices/{name}").status_code == 200


def test_a_model_that_cannot_clone_refuses_a_cloned_voice(
    server: AppServer, client: openai.OpenAI, store: VoiceStore, plain_tts: FakeTtsBackend
) -> None:
    voice = store.create("ada", tone(3.0), shared=True)
    # The model that can clone is named whether it is loaded or not.
    server.http(server.admin_key).post("/admin/models/clone/unload").raise_for_status()
    assert server.manager.get("clone").engine is None
    before = len(plain_tts.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="tts", voice=voice.id, input="Hello.")
    assert refused.value.code == "unsupported"
    assert refused.value.param == "voice"
    message = str(refused.value)
    assert "cannot speak in cloned voices" in message and "Models that can: clone." in message
    assert len(plain_tts.requests) == before  # refused before the engine ran


def test_models_say_which_can_clone_before_loading(server: AppServer) -> None:
    http = server.http(server.admin_key)
    for alias in ("clone", "tts"):
        http.post(f"/admin/models/{alias}/unload").raise_for_status()
    before = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert before["clone"]["state"] == "available" and before["clone"]["cloning"] is True
    assert before["tts"]["cloning"] is False
    assert "cloning" not in before["stt"]  # a speech-to-text model has no such thing
    http.post("/admin/models/clone/load").raise_for_status()
    assert http.get("/v1/models/clone").json()["cloning"] is True  # the engine agrees


def test_built_in_voices_keep_winning(
    client: openai.OpenAI, store: VoiceStore, cloner: FakeCloningTtsBackend
) -> None:
    store.create("ada", tone(3.0), shared=True)
    client.audio.speech.create(model="clone", voice="am_echo", input="Built in.")
    assert cloner.requests[-1].reference is None and cloner.requests[-1].voice == "am_echo"
    client.audio.speech.create(model="clone", voice="alloy", input="OpenAI name.")
    assert cloner.requests[-1].reference is None


def test_listing_by_model(server: AppServer, store: VoiceStore) -> None:
    store.create("anyone", tone(2.0), shared=True)
    store.create("clones-only", tone(2.0), model="clone", shared=True)
    http = server.http()

    def cloned(model: str) -> list[str]:
        data = http.get("/v1/audio/voices", params={"model": model}).json()["data"]
        assert all(v["type"] == "builtin" for v in data if v["model"] == model and "name" not in v)
        return [v["name"] for v in data if v["type"] == "audio_sample"]

    assert cloned("clone") == ["anyone", "clones-only"]
    assert cloned("tts") == ["anyone"]
    assert cloned("stt") == []


# --- bad requests ---------------------------------------------------------------------

BAD_RECORDINGS = {
    "not audio": (b"this is not audio at all\n" * 100, "invalid_audio", "format"),
    "empty": (b"", "empty_audio", "empty"),
    "too short": (tone(0.5), "audio_too_short", "at least 1 s"),
    "too long": (tone(MAX_SECONDS + 1), "audio_too_long", f"{MAX_SECONDS:g} s"),
    "silent": (wav_of(np.zeros(48_000, dtype=np.float32)), "empty_audio", "silent"),
    "nearly silent": (tone(3.0, level=10 ** (-70 / 20)), "empty_audio", "nearly silent"),
    "a click in silence": (
        wav_of(np.r_[np.zeros(24_000), np.ones(800), np.zeros(24_000)].astype(np.float32)),
        "empty_audio",
        "nearly silent",
    ),
}


@pytest.mark.parametrize("case", list(BAD_RECORDINGS))
def test_a_bad_recording_is_a_400_and_leaves_nothing(
    server: AppServer, store: VoiceStore, case: str
) -> None:
    audio, code, words = BAD_RECORDINGS[case]
    response = create(server.http(), {"name": "bad"}, audio)
    assert_error(response, 400, code, words)
    assert response.json()["error"]["param"] == "audio_sample"
    assert stored_entries(store) == []
    server.assert_healthy()


BAD_FORMS: dict[str, tuple[dict[str, str], bytes | None, int, str | None, str]] = {
    "missing name": ({}, tone(2.0), 400, None, "'name'"),
    "blank name": ({"name": ""}, tone(2.0), 400, None, "name"),
    "bad characters": ({"name": "../etc"}, tone(2.0), 400, "invalid_voice_name", "letters"),
    "a space": ({"name": "my voice"}, tone(2.0), 400, "invalid_voice_name", "letters"),
    "too long a name": ({"name": "a" * 65}, tone(2.0), 400, "invalid_voice_name", "64"),
    "an id as name": ({"name": "voice_abc"}, tone(2.0), 400, "invalid_voice_name", "ids"),
    "an OpenAI voice": ({"name": "Alloy"}, tone(2.0), 400, "voice_name_reserved", "built-in"),
    "an engine voice": ({"name": "bf_emma"}, tone(2.0), 400, "voice_name_reserved", "built-in"),
    "a configured voice": (
        {"name": "narrator"},
        tone(2.0),
        400,
        "voice_name_reserved",
        "built-in",
    ),
    "missing recording": ({"name": "ok"}, None, 400, None, "audio_sample"),
    "unknown model": ({"name": "ok", "model": "nope"}, tone(2.0), 404, "model_not_found", "nope"),
    "an stt model": ({"name": "ok", "model": "stt"}, tone(2.0), 400, "model_kind_mismatch", "stt"),
    "a prompt voice": ({"name": "ok", "type": "prompt"}, tone(2.0), 400, "unsupported", "prompt"),
    "an unknown field": ({"name": "ok", "voice": "x"}, tone(2.0), 400, None, "voice"),
    "a long transcript": ({"name": "ok", "transcript": "a" * 2001}, tone(2.0), 400, None, "2000"),
}


@pytest.mark.parametrize("case", list(BAD_FORMS))
def test_a_bad_form_is_refused(server: AppServer, store: VoiceStore, case: str) -> None:
    data, audio, status, code, words = BAD_FORMS[case]
    assert_error(create(server.http(), data, audio), status, code, words)
    assert stored_entries(store) == []


def test_both_recording_fields_at_once_is_a_400(server: AppServer, store: VoiceStore) -> None:
    response = server.http().post(
        "/v1/audio/voices",
        data={"name": "twice"},
        files={"audio_sample": ("a.wav", tone(2.0)), "file": ("b.wav", tone(2.0))},
    )
    assert_error(response, 400, None, "once")
    assert stored_entries(store) == []


def test_a_taken_name_is_a_409_in_any_case(server: AppServer, store: VoiceStore) -> None:
    first = store.create("Ada", tone(2.0))
    with pytest.raises(openai.ConflictError) as taken:
        server.client().audio.voices.create(name="ada", audio_sample=tone(2.0), consent="c")
    assert taken.value.code == "voice_exists" and first.id in str(taken.value)
    # openai clients retry a 409 unless told not to; a taken name stays taken.
    assert taken.value.response.headers["x-should-retry"] == "false"
    assert stored_entries(store) == [first.id]


def test_a_recording_over_the_limit_is_a_413_with_or_without_a_length(
    server: AppServer, store: VoiceStore
) -> None:
    big = np.random.default_rng(0).bytes(int(UPLOAD_LIMIT_MB * 1024 * 1024) + 10_000)
    http = server.http()
    assert_error(create(http, {"name": "big"}, big), 413, "payload_too_large", "voice_upload")

    # The same body sent chunked, with no Content-Length: stopped as it crosses the limit.
    request = http.build_request(
        "POST", "/v1/audio/voices", data={"name": "big"}, files={"audio_sample": ("a", big)}
    )
    body = request.read()
    pieces = (body[i : i + 65_536] for i in range(0, len(body), 65_536))
    chunked = http.post(
        "/v1/audio/voices",
        content=pieces,
        headers={"Content-Type": request.headers["Content-Type"]},
    )
    assert_error(chunked, 413, "payload_too_large", "voice_upload")
    assert stored_entries(store) == []
    server.assert_healthy()


# --- who reaches which voice -----------------------------------------------------------


def test_a_user_key_reaches_only_its_own_voices(server: AppServer, store: VoiceStore) -> None:
    """Another key's private cloned voice is as absent as one never made: not listed, 404
    to read or delete, 400 voice_not_found to speak with. A shared voice is every key's to
    use but only its creator's or an admin's to delete; a voice no key made (``bragi
    voices add``) is the admins' unless shared. Admin keys reach every voice."""
    other = server.app.state.keystore.create("other", "user").key
    mine = create(server.http(), {"name": "mine"}, tone(2.0)).json()
    theirs = create(server.http(other), {"name": "theirs"}, tone(2.0)).json()
    shared = create(server.http(other), {"name": "shared", "shared": "true"}, tone(2.0)).json()
    store.create("admins", tone(2.0))  # the command line: no key

    def cloned_names(key: str | None = None) -> list[str]:
        listed = server.http(key).get("/v1/audio/voices").json()["data"]
        return sorted(v["name"] for v in listed if v["type"] == "audio_sample")

    assert cloned_names() == ["mine", "shared"]
    assert cloned_names(other) == ["shared", "theirs"]
    assert cloned_names(server.admin_key) == ["admins", "mine", "shared", "theirs"]
    for route in (f"/v1/audio/voices/{theirs['id']}", "/v1/audio/voices/theirs"):
        assert_error(server.http().get(route), 404, "voice_not_found")
        assert_error(server.http().delete(route), 404, "voice_not_found")
    assert_error(server.http().get("/v1/audio/voices/admins"), 404, "voice_not_found")
    speech = {"model": "clone", "input": "Hello.", "response_format": "wav"}
    for refused_voice in ("theirs", "admins"):
        refused = server.http().post("/v1/audio/speech", json=speech | {"voice": refused_voice})
        assert_error(refused, 400, "voice_not_found", refused_voice)
    for voice in ("mine", "shared"):
        assert server.http().post("/v1/audio/speech", json=speech | {"voice": voice}).is_success

    denied = server.http().delete(f"/v1/audio/voices/{shared['id']}")  # seen, not owned
    assert_error(denied, 403, "permission_denied", "another key")
    assert server.http().delete(f"/v1/audio/voices/{mine['id']}").json()["deleted"] is True
    admin = server.http(server.admin_key).delete("/v1/audio/voices/theirs")
    assert admin.json() == {"id": theirs["id"], "object": "audio.voice.deleted", "deleted": True}
    for name in ("shared", "admins"):
        assert server.http(server.admin_key).delete(f"/v1/audio/voices/{name}").is_success
    assert stored_entries(store) == []


def test_a_voice_is_its_creators_unless_shared(
    server: AppServer, store: VoiceStore, cloner: FakeCloningTtsBackend
) -> None:
    other = server.app.state.keystore.create("neighbour", "user").key
    private = create(server.http(other), {"name": "private"}, tone(2.0)).json()
    shared = create(server.http(other), {"name": "open", "shared": "true"}, tone(2.0)).json()
    assert (private["shared"], shared["shared"]) == (False, True)

    def listed(key: str) -> set[str]:
        data = server.http(key).get("/v1/audio/voices").json()["data"]
        return {v["name"] for v in data if v["type"] == "audio_sample"}

    assert listed(other) == {"private", "open"}
    assert listed(server.user_key) == {"open"}  # another key's private voice is not there
    assert listed(server.admin_key) == {"private", "open"}
    for path in (private["id"], "private"):
        hidden = server.http().get(f"/v1/audio/voices/{path}")
        assert_error(hidden, 404, "voice_not_found", "No cloned voice")
        gone = server.http().delete(f"/v1/audio/voices/{path}")
        assert_error(gone, 404, "voice_not_found", "No cloned voice")
    speak = {"model": "clone", "input": "Hello.", "response_format": "pcm"}
    refused = server.http().post("/v1/audio/speech", json=speak | {"voice": "private"})
    assert_error(refused, 400, "voice_not_found", "not available")
    assert server.http(other).post("/v1/audio/speech", json=speak | {"voice": "private"}).is_success
    assert cloner.requests[-1].reference is not None  # its creator speaks in it
    assert server.http().post("/v1/audio/speech", json=speak | {"voice": "open"}).is_success
    admin = server.http(server.admin_key)
    assert admin.post("/v1/audio/speech", json=speak | {"voice": "private"}).is_success
    assert store.get("private").created_by is not None  # still there, untouched


def test_voices_route_needs_a_key(server: AppServer) -> None:
    anonymous = server.http(auth=False)
    for method, path in [
        ("POST", "/v1/audio/voices"),
        ("GET", "/v1/audio/voices/voice_0"),
        ("DELETE", "/v1/audio/voices/voice_0"),
    ]:
        assert anonymous.request(method, path).status_code == 401


def test_stored_voices_survive_a_new_app(
    server: AppServer, store: VoiceStore, tmp_path: Path
) -> None:
    voice = store.create("lasting", tone(2.0), transcript="la")
    again = VoiceStore(store.root)
    assert again.get("lasting") == voice
