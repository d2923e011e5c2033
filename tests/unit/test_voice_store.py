"""The cloned-voice store: what a voice is on disk, names, limits, atomic writes, damage."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from bragi.audio import Audio
from bragi.errors import (
    AudioDecodeError,
    AudioTooLongError,
    BragiError,
    ConflictError,
    EmptyAudioError,
    InvalidRequestError,
    NotFoundError,
    StorageFullError,
)
from bragi.voices import STORED_SAMPLE_RATE, ReferenceLimits, VoiceStore, check_name
from bragi.voices import store as store_module
from bragi.voices.reference import sounding_seconds
from fakes import sine, wav_bytes, wav_of


@pytest.fixture
def store(tmp_path: Path) -> VoiceStore:
    return VoiceStore(tmp_path / "voices", clock=lambda: 1_700_000_000.0)


def entries(store: VoiceStore) -> list[str]:
    if not store.root.is_dir():
        return []
    return sorted(p.name for p in store.root.iterdir() if p.name != ".lock")


def stereo_flac(seconds: float, rate: int = 44_100) -> bytes:
    """A stereo FLAC at 44.1 kHz: left a tone, right silence."""
    left = sine(seconds, rate).samples
    planes = np.stack([left, np.zeros_like(left)])
    out = io.BytesIO()
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(
            (planes * 32767).astype(np.int16).T.reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


# --- the round trip --------------------------------------------------------------------


def test_a_voice_is_a_directory_with_its_recording_and_facts(store: VoiceStore) -> None:
    voice = store.create(
        "ada", stereo_flac(3.0), transcript=" Hello. ", model="xtts", created_by="key_1"
    )
    assert voice.id.startswith("voice_") and len(voice.id) == len("voice_") + 24
    assert (voice.name, voice.transcript, voice.model, voice.created_by) == (
        "ada",
        "Hello.",
        "xtts",
        "key_1",
    )
    assert voice.created_at == 1_700_000_000
    assert voice.sample_rate == STORED_SAMPLE_RATE and voice.duration == pytest.approx(3.0)
    assert entries(store) == [voice.id]
    assert sorted(os.listdir(store.root / voice.id)) == ["reference.flac", "voice.json"]
    facts = json.loads((store.root / voice.id / "voice.json").read_text())
    assert facts["version"] == 1 and facts["name"] == "ada"

    reference = store.reference(voice)
    assert reference.id == voice.id and reference.transcript == "Hello."
    assert reference.audio.sample_rate == STORED_SAMPLE_RATE
    assert len(reference.audio.samples) == pytest.approx(3.0 * STORED_SAMPLE_RATE, abs=2)
    # Stereo was mixed down (a tone at 0.3 in one channel is 0.15 in mono).
    assert float(np.abs(reference.audio.samples).max()) == pytest.approx(0.15, abs=0.01)

    assert store.list() == [voice]
    assert store.find("ADA") == voice and store.find(voice.id) == voice
    assert store.find("nobody") is None and store.find("voice_123") is None
    assert store.find("voice_../../etc") is None

    assert store.delete("ada") == voice
    assert entries(store) == [] and store.list() == []
    with pytest.raises(NotFoundError) as missing:
        store.delete(voice.id)
    assert missing.value.code == "voice_not_found"


def test_references_are_cached_and_forgotten_on_delete(store: VoiceStore) -> None:
    voices = [store.create(f"v{i}", wav_bytes(1.5)) for i in range(10)]
    first = store.reference(voices[0])
    assert store.reference(voices[0]) is first
    for voice in voices[1:]:
        store.reference(voice)
    assert store.reference(voices[0]) is not first  # pushed out by eight newer ones
    last = store.reference(voices[-1])
    store.delete(voices[-1].id)
    again = store.create(voices[-1].name, wav_bytes(1.5))
    assert store.reference(again) is not last


def test_a_damaged_recording_is_a_clear_server_error(store: VoiceStore) -> None:
    voice = store.create("ada", wav_bytes(2.0))
    (store.root / voice.id / "reference.flac").write_bytes(b"garbage")
    with pytest.raises(BragiError) as damaged:
        store.reference(voice)
    assert damaged.value.status_code == 500 and damaged.value.code == "voice_damaged"
    assert "delete the voice" in damaged.value.message


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ada", "Ada-2", "a.b_c", "7", "x" * 64])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", " ada", "-ada", ".hidden", "a/b", "a b", "é", "x" * 65, "voice_ada", "VOICE_x"]
)
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidRequestError) as bad:
        check_name(name)
    assert bad.value.code == "invalid_voice_name" and bad.value.param == "name"


def test_built_in_names_are_reserved_in_any_case() -> None:
    with pytest.raises(InvalidRequestError) as reserved:
        check_name("ALLOY", reserved={"alloy"})
    assert reserved.value.code == "voice_name_reserved"


def test_a_taken_name_is_a_conflict_in_any_case(store: VoiceStore) -> None:
    first = store.create("Ada", wav_bytes(1.5))
    with pytest.raises(ConflictError) as taken:
        store.create("aDA", wav_bytes(1.5))
    assert taken.value.status_code == 409 and taken.value.code == "voice_exists"
    assert entries(store) == [first.id]


def test_two_creators_racing_for_a_name_get_one_voice(store: VoiceStore) -> None:
    data = wav_bytes(1.5)
    results: list[Any] = []
    start = threading.Barrier(4)

    def create() -> None:
        start.wait()
        try:
            results.append(store.create("same", data))
        except ConflictError as exc:
            results.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    made = [r for r in results if not isinstance(r, ConflictError)]
    assert len(made) == 1 and len(results) == 4
    assert entries(store) == [made[0].id]


def test_the_store_holds_at_most_max_voices(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path / "voices", max_voices=2)
    store.create("a", wav_bytes(1.5))
    store.create("b", wav_bytes(1.5))
    with pytest.raises(InvalidRequestError) as full:
        store.create("c", wav_bytes(1.5))
    assert full.value.code == "voice_limit_reached" and "max_voices" in full.value.message
    assert len(entries(store)) == 2


# --- the recording ------------------------------------------------------------------------


QUIET = 10 ** (-70 / 20)
BAD = {
    "not audio": (b"hello" * 100, AudioDecodeError, "invalid_audio"),
    "empty": (b"", EmptyAudioError, "empty_audio"),
    "too short": (wav_bytes(0.9), InvalidRequestError, "audio_too_short"),
    "too long": (wav_bytes(5.5), AudioTooLongError, "audio_too_long"),
    "digital silence": (wav_of(np.zeros(32_000), 16_000), EmptyAudioError, "empty_audio"),
    "hiss at -70 dBFS": (
        wav_of(sine(3.0, 16_000).samples / 0.3 * QUIET, 16_000),
        EmptyAudioError,
        "empty_audio",
    ),
    "half a second of sound in four": (
        wav_of(np.r_[sine(0.5, 16_000).samples, np.zeros(56_000)], 16_000),
        EmptyAudioError,
        "empty_audio",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_recordings_are_refused_and_leave_nothing(tmp_path: Path, case: str) -> None:
    store = VoiceStore(tmp_path / "voices", limits=ReferenceLimits(1.0, 5.0))
    data, error, code = BAD[case]
    with pytest.raises(error) as refused:
        store.create("ada", data, param="file")
    assert refused.value.status_code == 400
    assert refused.value.code == code and refused.value.param == "file"
    assert entries(store) == []


def test_a_long_transcript_is_refused(store: VoiceStore) -> None:
    with pytest.raises(InvalidRequestError) as long:
        store.create("ada", wav_bytes(1.5), transcript="word " * 500)
    assert long.value.param == "transcript"


def test_sounding_seconds_counts_frames_above_the_floor() -> None:
    rate = 24_000
    speech = sine(1.0, rate).samples
    audio = Audio(np.r_[speech, np.zeros(rate, np.float32), speech].astype(np.float32), rate)
    assert sounding_seconds(audio) == pytest.approx(2.0, abs=0.02)
    assert sounding_seconds(Audio.empty(rate)) == 0.0


# --- crashes and damage ---------------------------------------------------------------------


def test_a_failure_while_writing_leaves_nothing(
    store: VoiceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(audio: Audio, fmt: str) -> bytes:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module, "encode_audio", broken)
    with pytest.raises(StorageFullError):  # a 507 the client reads, not a 500
        store.create("ada", wav_bytes(1.5))
    assert entries(store) == []


def test_a_crash_before_the_rename_is_swept_when_old(store: VoiceStore) -> None:
    store.root.mkdir(parents=True)
    old = store.root / ".tmp-voice_dead"
    young = store.root / ".trash-voice_busy"
    for leftover in (old, young):
        leftover.mkdir()
        (leftover / "voice.json").write_text("{}")
    an_hour_ago = time.time() - 3700
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert store.list() == []  # hidden directories are never voices
    store.create("ada", wav_bytes(1.5))
    assert not old.exists() and young.exists()  # a young one may be another process's


def test_damaged_voices_are_skipped_and_reported(store: VoiceStore) -> None:
    good = store.create("good", wav_bytes(1.5))
    damaged = {
        "voice_aaaa": ("{not json", True),
        "voice_bbbb": (json.dumps({"id": "voice_bbbb"}), True),  # fields missing
        "voice_cccc": (good.model_copy(update={"id": "voice_dddd"}).model_dump_json(), True),
        "voice_eeee": (good.model_copy(update={"id": "voice_eeee"}).model_dump_json(), False),
        "voice_ffff": (None, True),
    }
    for name, (facts, with_audio) in damaged.items():
        folder = store.root / name
        folder.mkdir()
        if facts is not None:
            (folder / "voice.json").write_text(facts)
        if with_audio:
            (folder / "reference.flac").write_bytes(b"")
    (store.root / "stray.txt").write_text("not a voice")

    voices, problems = store.scan()
    assert voices == [good]
    reasons = {problem.path.name: problem.reason for problem in problems}
    assert set(reasons) == set(damaged)
    assert "voice.json" in reasons["voice_aaaa"] and "name" in reasons["voice_bbbb"]
    assert "voice_dddd" in reasons["voice_cccc"] and "reference.flac" in reasons["voice_eeee"]
    assert store.list() == [good]
    assert store.find("voice_aaaa") is None
    # A damaged voice's name does not block anything; a good one's still does.
    with pytest.raises(ConflictError):
        store.create("good", wav_bytes(1.5))


def test_newer_fields_in_voice_json_are_ignored(store: VoiceStore) -> None:
    voice = store.create("ada", wav_bytes(1.5))
    path = store.root / voice.id / "voice.json"
    facts = json.loads(path.read_text()) | {"embedding_cache": "later"}
    path.write_text(json.dumps(facts))
    assert store.get(voice.id) == voice


def test_voices_are_readable_by_the_service_user_only(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual one: 0755 folders and 0644 files by default
    try:
        store = VoiceStore(tmp_path / "data" / "voices")
        voice = store.create("ada", wav_bytes(2.0))
    finally:
        os.umask(old_umask)

    def mode(path: Path) -> int:
        return path.stat().st_mode & 0o777

    assert mode(tmp_path / "data") == 0o700  # the data dir too, whoever creates it
    assert mode(store.root) == 0o700 and mode(store.root / voice.id) == 0o700
    for name in ("reference.flac", "voice.json"):
        assert mode(store.root / voice.id / name) == 0o600
    assert mode(store.root / ".lock") == 0o600
    assert voice.shared is False
    # a folder that exists is the operator's: left as it is
    shared_dir = tmp_path / "shared"
    shared_dir.mkdir(mode=0o755)
    shared_dir.chmod(0o755)
    VoiceStore(shared_dir).create("bo", wav_bytes(2.0))
    assert mode(shared_dir) == 0o755


def test_a_data_dir_a_command_creates_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bragi.cli.main import main

    monkeypatch.delenv("BRAGI_CONFIG", raising=False)
    old_umask = os.umask(0o022)
    try:
        assert main(["list", "--data-dir", str(tmp_path / "fresh")]) == 0  # e.g. before a pull
    finally:
        os.umask(old_umask)
    assert (tmp_path / "fresh").stat().st_mode & 0o777 == 0o700
    capsys.readouterr()


def test_who_may_use_a_voice() -> None:
    voice = store_module.StoredVoice(
        id="voice_1", name="a", created_at=0, duration=2.0, sample_rate=24_000, created_by="k1"
    )
    assert voice.usable_by("k1", admin=False) and voice.usable_by("k2", admin=True)
    assert not voice.usable_by("k2", admin=False) and not voice.usable_by(None, admin=False)
    assert voice.model_copy(update={"shared": True}).usable_by("k2", admin=False)
    ownerless = voice.model_copy(update={"created_by": None})  # made on the command line
    assert not ownerless.usable_by("k1", admin=False) and ownerless.usable_by("k1", admin=True)


def test_voices_dir_puts_the_store_elsewhere(tmp_path: Path) -> None:
    from bragi.config import Settings

    settings = Settings(data_dir=tmp_path / "data", voices_dir=tmp_path / "shared-voices")
    assert VoiceStore.for_settings(settings).root == tmp_path / "shared-voices"
    assert VoiceStore.for_settings(Settings(data_dir=tmp_path)).root == tmp_path / "voices"


# --- the command line ----------------------------------------------------------------------


def test_bragi_voices_add_list_and_rm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bragi.cli.main import main

    monkeypatch.delenv("BRAGI_CONFIG", raising=False)
    recording = tmp_path / "ada.wav"
    recording.write_bytes(wav_bytes(2.0))
    common = ["--data-dir", str(tmp_path / "data")]

    assert main(["voices", "add", "ada", str(recording), "--transcript", "Hi.", *common]) == 0
    voice_id = capsys.readouterr().out.split()[0]
    assert voice_id.startswith("voice_")
    assert main(["voices", "list", *common]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[:5] == [voice_id, "ada", "2.0", "-", "no"]
    assert main(["voices", "add", "cy", str(recording), "--shared", *common]) == 0
    assert VoiceStore(tmp_path / "data" / "voices").get("cy").shared is True
    assert main(["voices", "rm", "cy", *common]) == 0
    capsys.readouterr()

    for name, words in [("ADA", "already exists"), ("alloy", "built-in"), ("a b", "Invalid")]:
        assert main(["voices", "add", name, str(recording), *common]) == 1
        assert words in capsys.readouterr().err
    assert main(["voices", "add", "bo", str(recording), "--model", "nope", *common]) == 1
    assert "no model 'nope'" in capsys.readouterr().err

    assert main(["voices", "rm", "ada", *common]) == 0
    assert capsys.readouterr().out == f"deleted {voice_id} ada\n"
    assert main(["voices", "rm", "ada", *common]) == 1
    assert "No cloned voice" in capsys.readouterr().err
