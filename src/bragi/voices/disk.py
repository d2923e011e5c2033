"""The file-system steps the voice store is built from: durable writes, a lock, sweeping."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from bragi.errors import StorageError, StorageFullError

__all__ = ["exclusive_lock", "storage_error", "sweep", "sync_dir", "write_file"]

_FULL = {errno.ENOSPC, errno.EDQUOT}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


def storage_error(exc: OSError, where: Path) -> StorageError | None:
    """The typed error for a write to ``where`` that the file system refused, if it is
    one a client should hear about (full, read-only); None for anything else."""
    if exc.errno in _FULL:
        return StorageFullError(
            f"No space left on the device that holds {where}; free some, then try again."
        )
    if exc.errno in _READ_ONLY:
        return StorageError(
            f"{where} cannot be written ({exc.strerror}); what is stored can still be used."
        )
    return None


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file readable by this user only (a voice is a recording of
    a person) and flush it to the disk before returning."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def sync_dir(path: Path) -> None:
    """Make a rename in ``path`` survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing), across threads and processes.

    ``flock`` locks belong to one open file, so two threads of one process exclude each
    other as two processes do.
    """
    with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def sweep(root: Path, prefixes: tuple[str, ...], older_than: float) -> None:
    """Remove the entries of ``root`` named with one of ``prefixes`` and not touched for
    ``older_than`` seconds."""
    cutoff = time.time() - older_than
    for entry in root.iterdir():
        if entry.name.startswith(prefixes):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
