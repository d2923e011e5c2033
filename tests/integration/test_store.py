"""The model store against a stand-in hub serving real Whisper tiny.en weights.

Everything below goes through the real huggingface_hub download code; only the hub is
a local stand-in (tests/hubstub.py).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import shutil
from pathlib import Path

import pytest

from bragi.errors import (
    DiskFullError,
    HubUnreachableError,
    ModelFetchError,
    ModelRepoGatedError,
    ModelRepoNotFoundError,
)
from bragi.models.store import DownloadProgress, HubSource, ModelStore
from hubstub import WHISPER_FILES, WHISPER_MODEL_SHA256, WHISPER_REPO, HubStub

WHISPER = HubSource(WHISPER_REPO, allow_patterns=WHISPER_FILES)
SMALL = HubSource(WHISPER_REPO, allow_patterns=("config.json", "vocabulary.*"))
NEEDED = {"config.json", "model.bin", "tokenizer.json", "vocabulary.txt"}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def files_in(snapshot: Path) -> set[str]:
    return {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()}


def leftovers(root: Path) -> list[Path]:
    """Partial downloads huggingface_hub would have left behind."""
    return [p for p in root.rglob("*") if p.name.endswith((".incomplete", ".tmp"))]


def test_full_pull_downloads_only_the_allowed_files_verified_with_progress(
    hub_stub: HubStub, whisper_repo_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ModelStore(tmp_path / "models")
    events: list[DownloadProgress] = []
    caplog.set_level(logging.INFO, logger="bragi.models.store")

    snapshot = store.fetch(WHISPER, events.append)

    assert files_in(snapshot) == NEEDED
    assert sha256(snapshot / "model.bin") == WHISPER_MODEL_SHA256
    for name in NEEDED - {"model.bin"}:
        assert (snapshot / name).read_bytes() == (whisper_repo_dir / name).read_bytes()
    assert not hub_stub.seen(contains="README.md") and not hub_stub.seen(contains="onnx")

    total = sum((whisper_repo_dir / name).stat().st_size for name in NEEDED)
    done = [event.bytes_done for event in events]
    assert done == sorted(done) and len(set(done)) > 5  # bytes arrive in steps
    assert events[-1].bytes_done == events[-1].bytes_total == total
    assert (events[-1].files_done, events[-1].files_total) == (4, 4)
    assert "model.bin" in {event.filename for event in events}

    # Nothing outside the data dir, nothing half-written inside it.
    assert [p.name for p in store.root.iterdir()] == ["hub"]
    assert leftovers(store.root) == []
    assert store.local_path(WHISPER) == snapshot
    [stored] = store.list()
    assert (stored.repo_id, stored.path, stored.refs) == (WHISPER_REPO, snapshot, ("main",))
    assert stored.size_bytes == total

    lines = [r.getMessage() for r in caplog.records if r.name == "bragi.models.store"]
    assert any(line.startswith("pulling ") and "%" in line for line in lines)
    assert len(lines) <= 12  # throttled: about every 10 %
    assert lines[-1].startswith(f"pulled {WHISPER_REPO} (4 files")

    # A second pull only asks the hub what "main" is: no file is downloaded again.
    before = len(hub_stub.seen("GET", contains="model.bin"))
    assert store.fetch(WHISPER) == snapshot
    assert len(hub_stub.seen("GET", contains="model.bin")) == before


def test_a_cut_connection_is_resumed_with_a_range_request(
    hub_stub: HubStub, tmp_path: Path
) -> None:
    cut_at = 30_000_000
    hub_stub.cut_once(WHISPER_REPO, "model.bin", after_bytes=cut_at)
    events: list[DownloadProgress] = []

    snapshot = ModelStore(tmp_path / "models").fetch(WHISPER, events.append)

    assert sha256(snapshot / "model.bin") == WHISPER_MODEL_SHA256
    first, resumed = hub_stub.content_gets("model.bin")
    assert "Range" not in first.headers
    start = int(resumed.headers["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= cut_at  # from what it had, not from zero
    assert events[-1].bytes_done == events[-1].bytes_total  # no byte counted twice


def test_a_failed_pull_leaves_nothing_usable_and_the_next_one_completes(
    hub_stub: HubStub, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "models")
    hub_stub.cut_once(WHISPER_REPO, "model.bin", after_bytes=20_000_000)
    hub_stub.fail_once(WHISPER_REPO, "model.bin", status=500)  # the resume fails too

    with pytest.raises(ModelFetchError, match="answered HTTP 500"):
        store.fetch(WHISPER)
    assert store.local_path(WHISPER) is None
    assert store.list() == []
    assert leftovers(store.root) == []

    events: list[DownloadProgress] = []
    snapshot = store.fetch(WHISPER, events.append)
    assert sha256(snapshot / "model.bin") == WHISPER_MODEL_SHA256
    assert len(hub_stub.content_gets("config.json")) == 1  # finished files are kept
    assert events[-1].bytes_done == events[-1].bytes_total  # kept ones counted once
    assert (events[-1].files_done, events[-1].files_total) == (4, 4)


def test_a_corrupt_file_is_caught_removed_and_fetched_again(
    hub_stub: HubStub, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "models")
    source = HubSource(WHISPER_REPO, allow_patterns=("model.bin", "config.json"))
    hub_stub.corrupt(WHISPER_REPO, "model.bin")

    with pytest.raises(ModelFetchError, match=r"model\.bin .* failed its sha256 check") as err:
        store.fetch(source)
    assert err.value.code == "checksum_mismatch"
    assert store.local_path(source) is None

    hub_stub.clear_faults()
    snapshot = store.fetch(source)
    assert sha256(snapshot / "model.bin") == WHISPER_MODEL_SHA256


def test_a_short_file_is_caught(hub_stub: HubStub, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    source = HubSource(WHISPER_REPO, allow_patterns=("model.bin",))
    hub_stub.truncate(WHISPER_REPO, "model.bin", keep=1_000_000)

    with pytest.raises(ModelFetchError, match="Consistency check failed"):
        store.fetch(source)
    assert store.local_path(source) is None
    assert leftovers(store.root) == []


def test_a_short_regular_file_fails_its_git_hash(hub_stub: HubStub, tmp_path: Path) -> None:
    # For a regular (non-LFS) file the hub's Content-Length is all there is to go by, so
    # only the checksum pass notices.
    store = ModelStore(tmp_path / "models")
    hub_stub.truncate(WHISPER_REPO, "vocabulary.txt", keep=1000)

    with pytest.raises(ModelFetchError, match=r"vocabulary\.txt .* git-sha1 check"):
        store.fetch(SMALL)
    assert store.local_path(SMALL) is None


def test_a_missing_repo_says_so(hub_stub: HubStub, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    with pytest.raises(ModelRepoNotFoundError) as err:
        store.fetch(HubSource("nobody/no-such-model"))
    assert err.value.message == (
        "Model repo 'nobody/no-such-model' was not found on the Hugging Face hub"
        " (if it is private, set HF_TOKEN)"
    )
    with pytest.raises(ModelRepoNotFoundError, match="Revision 'v9' of model repo"):
        store.fetch(HubSource(WHISPER_REPO, revision="v9"))
    assert store.list() == []


def test_a_gated_repo_needs_an_accepted_licence_and_a_token(
    hub_stub: HubStub, whisper_repo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_stub.add_repo("acme/gated-whisper", whisper_repo_dir, gated_token="hf_accepted")
    source = HubSource("acme/gated-whisper", allow_patterns=("config.json",))

    with pytest.raises(ModelRepoGatedError) as err:
        ModelStore(tmp_path / "a").fetch(source)
    assert err.value.message == (
        "Model repo 'acme/gated-whisper' is gated: accept its licence on the hub and set HF_TOKEN"
    )
    with pytest.raises(ModelRepoGatedError, match="the token has no access"):
        ModelStore(tmp_path / "b", token="hf_not_accepted").fetch(source)

    monkeypatch.setenv("HF_TOKEN", "hf_accepted")  # read from the environment by default
    snapshot = ModelStore(tmp_path / "c").fetch(source)
    assert files_in(snapshot) == {"config.json"}


def test_offline_uses_the_stored_copy_without_touching_the_network(
    hub_stub: HubStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "models"
    snapshot = ModelStore(root).fetch(SMALL)
    hub_stub.requests.clear()

    assert ModelStore(root, offline=True).fetch(SMALL) == snapshot
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert ModelStore(root).fetch(SMALL) == snapshot
    with pytest.raises(HubUnreachableError, match="offline mode is on"):
        ModelStore(root).fetch(WHISPER)  # model.bin was never pulled
    assert hub_stub.requests == []


def test_offline_without_a_stored_copy_is_a_clear_error(hub_stub: HubStub, tmp_path: Path) -> None:
    with pytest.raises(HubUnreachableError) as err:
        ModelStore(tmp_path / "models", offline=True).fetch(SMALL)
    assert err.value.message == (
        f"offline mode is on (HF_HUB_OFFLINE) and '{WHISPER_REPO}' is not in the model store"
    )
    assert hub_stub.requests == []


def test_an_unreachable_hub_falls_back_to_the_stored_copy(
    hub_stub: HubStub, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    snapshot = ModelStore(root).fetch(SMALL)
    dead = hub_stub.url
    hub_stub.stop()  # nothing listens there any more

    assert ModelStore(root, endpoint=dead).fetch(SMALL) == snapshot
    with pytest.raises(HubUnreachableError) as err:
        ModelStore(tmp_path / "empty", endpoint=dead).fetch(SMALL)
    assert err.value.message == (
        f"cannot reach the hub ({dead}) and no cached copy of '{WHISPER_REPO}'"
    )


def test_too_little_disk_space_is_refused_before_downloading(
    hub_stub: HubStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The OS is faked, not the engine: statvfs would say this on a nearly full disk.
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1 << 30, 0, 1024)
    )
    with pytest.raises(DiskFullError, match=r"no space left on device .* \(need 74 MB, 0 MB free"):
        ModelStore(tmp_path / "models").fetch(WHISPER)
    assert hub_stub.content_gets("model.bin") == []


def test_running_out_of_space_mid_download_is_reported(hub_stub: HubStub, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")

    def disk_fills_up(progress: DownloadProgress) -> None:  # raised where a write would fail
        if progress.bytes_done > 20_000_000:
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match="no space left on device while downloading"):
        store.fetch(WHISPER, disk_fills_up)
    assert leftovers(store.root) == []
    assert store.local_path(WHISPER) is None


def test_no_matching_file_is_an_error(hub_stub: HubStub, tmp_path: Path) -> None:
    with pytest.raises(ModelFetchError, match=r"no file of .* matches \['\*\.gguf'\]"):
        ModelStore(tmp_path / "models").fetch(HubSource(WHISPER_REPO, allow_patterns=("*.gguf",)))


def test_list_and_remove(hub_stub: HubStub, whisper_repo_dir: Path, tmp_path: Path) -> None:
    hub_stub.add_repo("acme/other-whisper", whisper_repo_dir)
    store = ModelStore(tmp_path / "models")
    assert store.list() == []
    store.fetch(SMALL)
    other = HubSource("acme/other-whisper", allow_patterns=("tokenizer.json",))
    other_path = store.fetch(other)

    listed = {model.repo_id: model for model in store.list()}
    assert set(listed) == {WHISPER_REPO, "acme/other-whisper"}
    assert listed["acme/other-whisper"].path == other_path
    size = listed["acme/other-whisper"].size_bytes
    assert size == (whisper_repo_dir / "tokenizer.json").stat().st_size

    assert store.remove("acme/other-whisper") >= size
    assert [model.repo_id for model in store.list()] == [WHISPER_REPO]
    assert store.local_path(other) is None and not other_path.exists()
    assert store.remove(other) == 0  # already gone
    assert store.local_path(SMALL) is not None
