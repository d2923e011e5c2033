"""The API key store: hashed keys in SQLite, revocation, roles, first-boot bootstrap."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bragi.auth import KEY_PREFIX, LAST_USED_INTERVAL, CreatedKey, KeyRecord, KeyStore
from bragi.errors import ConfigError, InvalidRequestError, NotFoundError


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def active(store: KeyStore) -> int:
    """How many keys are not revoked."""
    return sum(key.active for key in store.list())


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "keys.db"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[KeyStore]:
    with KeyStore(db_path, clock=clock) as keys:
        yield keys


def test_create_returns_a_well_formed_key_that_verifies(store: KeyStore, clock: FakeClock) -> None:
    created = store.create("ci")

    assert created.key.startswith(KEY_PREFIX)
    assert len(created.key) >= len(KEY_PREFIX) + 32
    record = created.record
    assert record.id.startswith("key_")
    assert (record.name, record.role, record.created_at) == ("ci", "user", clock.now)
    assert record.prefix == created.key[: len(record.prefix)]
    assert len(KEY_PREFIX) < len(record.prefix) <= len(KEY_PREFIX) + 8
    assert record.active and not record.is_admin

    verified = store.verify(created.key)
    assert verified is not None
    assert verified.id == record.id
    assert verified.last_used_at == clock.now


def test_each_key_is_distinct(store: KeyStore) -> None:
    created = [store.create(f"k{i}") for i in range(20)]
    assert len({c.key for c in created}) == 20
    assert len({c.record.id for c in created}) == 20


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "sk-bragi-",
        "not-a-bragi-key",
        KEY_PREFIX + "A" * 43,
        KEY_PREFIX + "A" * 10_000,
    ],
)
def test_verify_rejects_what_was_never_issued(store: KeyStore, presented: str) -> None:
    store.create("real")
    assert store.verify(presented) is None


def test_verify_rejects_a_key_off_by_one_character(store: KeyStore) -> None:
    key = store.create("real").key
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert store.verify(tampered) is None
    assert store.verify(key + "x") is None
    assert store.verify(key) is not None


def test_list_shows_records_and_never_secrets(store: KeyStore) -> None:
    first, second = store.create("alice"), store.create("bob", role="admin")

    listed = store.list()

    assert [r.id for r in listed] == [first.record.id, second.record.id]
    assert listed[0] == first.record
    assert {f.name for f in fields(KeyRecord)} == {
        "id",
        "name",
        "role",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    }
    for record in listed:
        assert first.key not in repr(record) and second.key not in repr(record)
    assert first.key not in repr(first)  # CreatedKey keeps the plaintext out of logs


def test_plaintext_is_never_written_to_disk(db_path: Path) -> None:
    with KeyStore(db_path) as store:
        created = [store.create(f"k{i}") for i in range(3)]
        bootstrap = store.bootstrap()
        assert bootstrap is None  # keys already exist
        for c in created:
            assert store.verify(c.key) is not None  # writes last_used_at too
        on_disk = b"".join(p.read_bytes() for p in db_path.parent.iterdir() if p.is_file())

    for c in created:
        secret_part = c.key.removeprefix(KEY_PREFIX)
        assert c.key.encode() not in on_disk
        assert secret_part.encode() not in on_disk
        assert secret_part[8:].encode() not in on_disk
        # Only the hash is there, proving these are the bytes that hold the keys.
        assert hashlib.sha256(c.key.encode()).hexdigest().encode() in on_disk


def test_revoke_stops_the_key_and_is_recorded(store: KeyStore, clock: FakeClock) -> None:
    kept, revoked = store.create("kept"), store.create("gone")
    assert active(store) == 2

    clock.advance(5)
    store.revoke(revoked.record.id)
    revoked_at = clock.now

    assert store.verify(revoked.key) is None
    assert store.verify(kept.key) is not None
    assert active(store) == 1
    by_id = {r.id: r for r in store.list()}
    assert by_id[revoked.record.id].revoked_at == revoked_at
    assert not by_id[revoked.record.id].active
    assert by_id[kept.record.id].revoked_at is None

    clock.advance(5)
    store.revoke(revoked.record.id)  # again: no error, the first revocation time is kept
    assert {r.id: r for r in store.list()}[revoked.record.id].revoked_at == revoked_at


def test_revoking_an_unknown_id_raises_not_found(store: KeyStore) -> None:
    key = store.create("real")
    with pytest.raises(NotFoundError) as caught:
        store.revoke("key_000000000000")
    assert caught.value.status_code == 404
    assert "key_000000000000" in caught.value.message
    with pytest.raises(NotFoundError):
        store.revoke(key.key)  # the plaintext is not an id
    assert store.verify(key.key) is not None


def test_revocation_by_another_process_is_seen_at_once(db_path: Path) -> None:
    with KeyStore(db_path) as server, KeyStore(db_path) as cli:
        created = cli.create("temp")
        assert server.verify(created.key) is not None
        cli.revoke(created.record.id)
        assert server.verify(created.key) is None


def test_bootstrap_creates_one_admin_key_once_across_restarts(db_path: Path) -> None:
    with KeyStore(db_path) as first_boot:
        created = first_boot.bootstrap()
        assert created is not None
        assert (created.record.name, created.record.role) == ("default", "admin")
        assert first_boot.bootstrap() is None

    with KeyStore(db_path) as second_boot:
        assert second_boot.bootstrap() is None
        verified = second_boot.verify(created.key)  # the key survived the restart
        assert verified is not None and verified.is_admin
        second_boot.revoke(created.record.id)

    with KeyStore(db_path) as third_boot:
        assert active(third_boot) == 0
        assert third_boot.bootstrap() is None  # keys were created once: no silent new admin
        assert len(third_boot.list()) == 1


def test_bootstrap_is_skipped_when_a_key_was_created_first(store: KeyStore) -> None:
    store.create("made-with-cli")
    assert store.bootstrap() is None
    assert [r.name for r in store.list()] == ["made-with-cli"]


def test_concurrent_bootstraps_on_one_file_create_a_single_key(db_path: Path) -> None:
    stores = [KeyStore(db_path) for _ in range(6)]
    try:
        barrier = threading.Barrier(len(stores))

        def boot(store: KeyStore) -> CreatedKey | None:
            barrier.wait()
            return store.bootstrap()

        with ThreadPoolExecutor(len(stores)) as pool:
            results = list(pool.map(boot, stores))
        assert sum(r is not None for r in results) == 1
        assert len(stores[0].list()) == 1
    finally:
        for s in stores:
            s.close()


def test_roles(store: KeyStore) -> None:
    admin, user = store.create("ops", role="admin"), store.create("app", role="user")

    verified_admin, verified_user = store.verify(admin.key), store.verify(user.key)

    assert verified_admin is not None and verified_admin.role == "admin"
    assert verified_admin.is_admin
    assert verified_user is not None and verified_user.role == "user"
    assert not verified_user.is_admin
    with pytest.raises(InvalidRequestError) as caught:
        store.create("root", role="superuser")  # type: ignore[arg-type]
    assert caught.value.param == "role"
    assert len(store.list()) == 2


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "tab\there"])
def test_bad_names_are_refused(store: KeyStore, name: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        store.create(name)
    assert caught.value.param == "name"
    assert store.list() == []


def test_name_is_trimmed(store: KeyStore) -> None:
    assert store.create("  laptop ").record.name == "laptop"


def test_files_are_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    db_path = tmp_path / "a" / "b" / "keys.db"
    old_umask = os.umask(0)
    try:
        with KeyStore(db_path) as store:
            key = store.create("x")
            assert store.verify(key.key) is not None
            for path in db_path.parent.iterdir():  # keys.db and its -wal / -shm files
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
        assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
    finally:
        os.umask(old_umask)


def test_an_existing_world_readable_file_is_tightened(db_path: Path) -> None:
    KeyStore(db_path).close()
    db_path.chmod(0o644)
    with KeyStore(db_path) as store:
        assert active(store) == 0
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_schema_is_versioned_and_a_newer_file_is_refused(db_path: Path) -> None:
    KeyStore(db_path).close()
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        conn.execute("PRAGMA user_version = 99")
        conn.commit()

    with pytest.raises(ConfigError, match="schema version 99"):
        KeyStore(db_path)


def test_a_file_that_is_not_a_database_is_a_config_error(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match=str(db_path)):
        KeyStore(db_path)


def test_last_used_is_written_at_most_once_a_minute(store: KeyStore, clock: FakeClock) -> None:
    created = store.create("busy")
    first_use = clock.now

    def persisted_last_used() -> datetime | None:
        return store.list()[0].last_used_at

    assert persisted_last_used() is None
    assert store.verify(created.key) is not None
    assert persisted_last_used() == first_use

    clock.advance(LAST_USED_INTERVAL.total_seconds() - 1)
    again = store.verify(created.key)
    assert again is not None and again.last_used_at == first_use
    assert persisted_last_used() == first_use

    clock.advance(1)
    later = store.verify(created.key)
    assert later is not None and later.last_used_at == clock.now
    assert persisted_last_used() == clock.now


def test_concurrent_verify_and_create_from_threads(store: KeyStore) -> None:
    admin, user = store.create("admin", role="admin"), store.create("user")
    revoked = store.create("revoked")
    store.revoke(revoked.record.id)
    expected = {
        admin.key: admin.record.id,
        user.key: user.record.id,
        revoked.key: None,
        KEY_PREFIX + "nope" * 11: None,
    }
    presented = list(expected) * 100

    def check(key: str) -> bool:
        record = store.verify(key)
        return (record.id if record else None) == expected[key]

    with ThreadPoolExecutor(8) as pool:  # map submits at once: creates and checks interleave
        creating = pool.map(lambda i: store.create(f"t{i}"), range(40))
        checking = pool.map(check, presented)
        created, outcomes = list(creating), list(checking)

    assert len(outcomes) == 400 and all(outcomes)
    assert len({c.record.id for c in created}) == 40
    assert all(store.verify(c.key) is not None for c in created)
    assert active(store) == 42
