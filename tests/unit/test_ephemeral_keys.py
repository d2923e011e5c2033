"""Ephemeral ``ek_`` keys in the key store: hashed, expiring, Realtime-only, migrated in."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bragi.auth import EPHEMERAL_PREFIX, KeyStore


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_an_ephemeral_key_is_stored_hashed_and_expires(tmp_path: Path) -> None:
    clock = FakeClock()
    with KeyStore(tmp_path / "keys.db", clock=clock) as store:
        parent = store.create("browser app").record
        made = store.create_ephemeral(parent, timedelta(seconds=60), '{"type": "transcription"}')
        assert made.key.startswith(EPHEMERAL_PREFIX) and made.key not in repr(made)
        found = store.verify_ephemeral(made.key)
        assert found is not None and found.key_id == parent.id
        assert found.session == '{"type": "transcription"}'
        assert found.expires_at == clock.now + timedelta(seconds=60)
        # Only for Realtime: an ordinary check never accepts it, nor a key for it.
        assert store.verify(made.key) is None
        assert store.verify_ephemeral(store.create("other").key) is None
        with closing(sqlite3.connect(tmp_path / "keys.db")) as conn:
            (stored,) = conn.execute("SELECT hash FROM ephemeral_keys").fetchone()
        assert stored == hashlib.sha256(made.key.encode()).hexdigest()

        clock.now += timedelta(seconds=60)
        assert store.verify_ephemeral(made.key) is None  # useless at once
        assert store.count_ephemeral() == 0  # and cleaned up


def test_revoking_the_maker_voids_its_ephemeral_keys(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "keys.db") as store:
        parent = store.create("app")
        made = store.create_ephemeral(parent.record, timedelta(minutes=10))
        store.revoke(parent.record.id)
        assert store.verify_ephemeral(made.key) is None


def test_a_version_1_key_store_is_migrated_and_its_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    old_key = "sk-bragi-" + "a" * 43
    with closing(sqlite3.connect(path)) as conn:  # the schema Bragi 0.1 wrote
        conn.execute(
            "CREATE TABLE keys (id TEXT PRIMARY KEY, name TEXT NOT NULL,"
            " role TEXT NOT NULL CHECK (role IN ('admin', 'user')), hash TEXT NOT NULL UNIQUE,"
            " prefix TEXT NOT NULL, created_at TEXT NOT NULL, last_used_at TEXT, revoked_at TEXT)"
        )
        conn.execute(
            "INSERT INTO keys (id, name, role, hash, prefix, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                "key_1",
                "old",
                "admin",
                hashlib.sha256(old_key.encode()).hexdigest(),
                old_key[:13],
                "2025-01-01T00:00:00.000000+00:00",
            ),
        )
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    with KeyStore(path) as store:
        record = store.verify(old_key)
        assert record is not None and record.name == "old"
        made = store.create_ephemeral(record, timedelta(seconds=10))
        assert store.verify_ephemeral(made.key) is not None
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
