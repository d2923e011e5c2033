"""API keys: a SQLite store that keeps only the SHA-256 of each key.

A key is ``sk-bragi-`` plus 43 URL-safe characters (256 random bits); its plaintext is
returned once and stored nowhere. For random tokens one fast hash is right (a slow
password hash would only slow every request): :meth:`KeyStore.verify` is one indexed
lookup. The file is mode 0600 in WAL mode, shared by a server's threads and a ``bragi
keys`` command beside it; ``PRAGMA user_version`` versions its schema (``_MIGRATIONS``).

Ephemeral keys (``ek_`` plus 43 characters, ``POST /v1/realtime/client_secrets``) live in
their own table, hashed the same way, each tied to the key that made it and to an expiry
(10 s to 2 h). They open Realtime sessions only: :meth:`KeyStore.verify` never accepts
one. Expired ones stop working at once and are deleted the next time one is made or used.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, Self, cast

from bragi.errors import ConfigError, InvalidRequestError, NotFoundError

__all__ = [
    "EPHEMERAL_PREFIX",
    "KEY_PREFIX",
    "LAST_USED_INTERVAL",
    "ROLES",
    "Clock",
    "CreatedEphemeralKey",
    "CreatedKey",
    "EphemeralKey",
    "KeyRecord",
    "KeyRole",
    "KeyStore",
]

KeyRole = Literal["admin", "user"]
Clock = Callable[[], datetime]

ROLES: Final[tuple[KeyRole, ...]] = ("admin", "user")
KEY_PREFIX: Final = "sk-bragi-"
EPHEMERAL_PREFIX: Final = "ek_"
LAST_USED_INTERVAL: Final = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per key, so auth rarely writes."""

SCHEMA_VERSION: Final = 2
_TOKEN_BYTES: Final = 32
_SHOWN_CHARS: Final = 4  # random characters kept in the listed prefix
_MAX_KEY_LENGTH: Final = 256
_MAX_NAME_LENGTH: Final = 64
_BUSY_TIMEOUT_S: Final = 5.0

# _MIGRATIONS[n] takes a file from schema version n to n + 1.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        "CREATE TABLE keys (id TEXT PRIMARY KEY, name TEXT NOT NULL,"
        " role TEXT NOT NULL CHECK (role IN ('admin', 'user')), hash TEXT NOT NULL UNIQUE,"
        " prefix TEXT NOT NULL, created_at TEXT NOT NULL, last_used_at TEXT, revoked_at TEXT)",
    ),
    (
        "CREATE TABLE ephemeral_keys (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE,"
        " key_id TEXT NOT NULL REFERENCES keys (id), created_at TEXT NOT NULL,"
        " expires_at TEXT NOT NULL, session TEXT)",
        "CREATE INDEX ephemeral_keys_expiry ON ephemeral_keys (expires_at)",
    ),
)
_COLUMNS: Final = "id, name, role, prefix, created_at, last_used_at, revoked_at"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key as listings show it: never its hash, never its plaintext."""

    id: str
    name: str
    role: KeyRole
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """Whether the key still authenticates."""
        return self.revoked_at is None

    @property
    def is_admin(self) -> bool:
        """Whether the key may use the admin API."""
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: ``key`` is its plaintext, to show the user once (kept out of ``repr``)."""

    key: str = field(repr=False)
    record: KeyRecord


@dataclass(frozen=True, slots=True)
class EphemeralKey:
    """A short-lived key for one kind of use (Realtime sessions), made by ``key_id``."""

    id: str
    key_id: str
    created_at: datetime
    expires_at: datetime
    session: str | None  # the session configuration it carries, as JSON


@dataclass(frozen=True, slots=True)
class CreatedEphemeralKey:
    """A new ephemeral key: ``key`` is its plaintext (kept out of ``repr``)."""

    key: str = field(repr=False)
    record: EphemeralKey


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _dump_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _load_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _record(row: tuple[Any, ...]) -> KeyRecord:
    key_id, name, role, prefix, created, last_used, revoked = row
    times = (datetime.fromisoformat(created), _load_time(last_used), _load_time(revoked))
    return KeyRecord(key_id, name, cast(KeyRole, role), prefix, *times)


def _check_name(name: str) -> str:
    name = name.strip()
    if not 0 < len(name) <= _MAX_NAME_LENGTH or not name.isprintable():
        message = f"A key name must be 1 to {_MAX_NAME_LENGTH} printable characters."
        raise InvalidRequestError(message, param="name")
    return name


def _check_role(role: str) -> KeyRole:
    if role not in ROLES:
        raise InvalidRequestError(
            f"Unknown role {role!r}: a key's role is one of {', '.join(ROLES)}.", param="role"
        )
    return role


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the database lock at once (safe across processes)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _create_private_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)  # also tightens a file that already existed


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    with _transaction(conn):
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"Key store {path} has schema version {version}, newer than this Bragi "
                f"understands ({SCHEMA_VERSION}); upgrade Bragi."
            )
        for statements in _MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _connect(path: Path) -> sqlite3.Connection:
    try:
        _create_private_file(path)
        conn = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"Cannot open the key store {path}: {exc}") from exc
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        _migrate(conn, path)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise ConfigError(f"Cannot use the key store {path}: {exc}") from exc
        raise
    return conn


class KeyStore:
    """API keys in a SQLite file: create, list, revoke, verify, first-boot bootstrap.

    Safe to share between threads (one connection behind a lock). ``clock`` returns
    an aware UTC datetime; tests inject one instead of sleeping.
    """

    def __init__(self, db_path: Path, *, clock: Clock = _utc_now) -> None:
        self.db_path = Path(db_path)
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = _connect(self.db_path)

    def create(self, name: str, role: KeyRole = "user") -> CreatedKey:
        """Make a key; the plaintext is in the result and nowhere else."""
        name, role = _check_name(name), _check_role(role)
        with self._lock:
            return self._insert(name, role)

    def list(self) -> builtins.list[KeyRecord]:
        """Every key ever created, revoked ones included, oldest first."""
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM keys ORDER BY rowid").fetchall()
        return [_record(row) for row in rows]

    def revoke(self, key_id: str) -> None:
        """Revoke a key by id; revoking a revoked key changes nothing.

        Raises :class:`~bragi.errors.NotFoundError` for an unknown id.
        """
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (_dump_time(self._now()), key_id),
            )
            if cursor.rowcount:
                return
            exists = self._conn.execute("SELECT 1 FROM keys WHERE id = ?", (key_id,)).fetchone()
        if exists is None:
            raise NotFoundError(f"No API key with id {key_id!r}.", param="key_id")

    def verify(self, plaintext: str) -> KeyRecord | None:
        """The active key matching ``plaintext``, or None for an unknown or revoked key."""
        if not plaintext.startswith(KEY_PREFIX) or len(plaintext) > _MAX_KEY_LENGTH:
            return None
        digest = _hash(plaintext)
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS}, hash FROM keys WHERE hash = ?", (digest,)
            ).fetchone()
            # The lookup already matched; compare_digest keeps the final check constant-time.
            if row is None or not hmac.compare_digest(row[-1], digest):
                return None
            record = _record(row[:-1])
            if not record.active:
                return None
            now = self._now()
            if record.last_used_at is None or now - record.last_used_at >= LAST_USED_INTERVAL:
                record = self._touch(record, now)
        return record

    def create_ephemeral(
        self, parent: KeyRecord, lifetime: timedelta, session: str | None = None
    ) -> CreatedEphemeralKey:
        """Make an ``ek_`` key that ``parent`` vouches for, valid for ``lifetime``."""
        now = self._now()
        plaintext = EPHEMERAL_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
        record = EphemeralKey(
            "ek_id_" + secrets.token_hex(8), parent.id, now, now + lifetime, session
        )
        with self._lock, _transaction(self._conn):
            self._purge_expired(now)
            self._conn.execute(
                "INSERT INTO ephemeral_keys (id, hash, key_id, created_at, expires_at, session)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    _hash(plaintext),
                    parent.id,
                    _dump_time(now),
                    _dump_time(record.expires_at),
                    session,
                ),
            )
        return CreatedEphemeralKey(plaintext, record)

    def verify_ephemeral(self, plaintext: str) -> EphemeralKey | None:
        """The unexpired ephemeral key matching ``plaintext`` whose maker is not revoked."""
        if not plaintext.startswith(EPHEMERAL_PREFIX) or len(plaintext) > _MAX_KEY_LENGTH:
            return None
        digest, now = _hash(plaintext), self._now()
        with self._lock:
            # Best effort: a busy database must not fail authentication.
            with suppress(sqlite3.OperationalError):
                self._purge_expired(now)
            row = self._conn.execute(
                "SELECT e.id, e.key_id, e.created_at, e.expires_at, e.session, e.hash"
                " FROM ephemeral_keys e JOIN keys k ON k.id = e.key_id"
                " WHERE e.hash = ? AND k.revoked_at IS NULL",
                (digest,),
            ).fetchone()
        if row is None or not hmac.compare_digest(row[-1], digest):
            return None
        key_id, parent, created, expires, session = row[:-1]
        record = EphemeralKey(
            key_id,
            parent,
            datetime.fromisoformat(created),
            datetime.fromisoformat(expires),
            session,
        )
        return record if record.expires_at > now else None

    def count_ephemeral(self) -> int:
        """How many ephemeral keys are stored (expired ones until the next purge)."""
        with self._lock:
            row = self._conn.execute("SELECT count(*) FROM ephemeral_keys").fetchone()
        return int(row[0])

    def bootstrap(self) -> CreatedKey | None:
        """On first boot (no key ever created), make the admin key ``default``.

        Returns it so the caller can print the plaintext once; afterwards None, even
        when every key has been revoked. Safe against two servers starting at once.
        """
        with self._lock, _transaction(self._conn):
            (count,) = self._conn.execute("SELECT count(*) FROM keys").fetchone()
            if count:
                return None
            return self._insert("default", "admin")

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

    def _insert(self, name: str, role: KeyRole) -> CreatedKey:
        now, plaintext = self._now(), KEY_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
        key_id, prefix = "key_" + secrets.token_hex(6), plaintext[: len(KEY_PREFIX) + _SHOWN_CHARS]
        self._conn.execute(
            "INSERT INTO keys (id, name, role, hash, prefix, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, name, role, _hash(plaintext), prefix, _dump_time(now)),
        )
        return CreatedKey(plaintext, KeyRecord(key_id, name, role, prefix, now, None, None))

    def _purge_expired(self, now: datetime) -> None:
        self._conn.execute("DELETE FROM ephemeral_keys WHERE expires_at <= ?", (_dump_time(now),))

    def _touch(self, record: KeyRecord, now: datetime) -> KeyRecord:
        try:
            self._conn.execute(
                "UPDATE keys SET last_used_at = ? WHERE id = ?", (_dump_time(now), record.id)
            )
        except sqlite3.OperationalError:
            return record  # best effort: a busy database must not fail authentication
        return replace(record, last_used_at=now)
