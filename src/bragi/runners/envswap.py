"""Replacing an engine environment safely, and knowing when a worker is using one.

A worker started from an environment holds a shared ``flock`` on its ``.in-use`` file for
as long as it runs (the server takes it and the worker inherits the open file, so the
lock lasts exactly as long as the worker, even one that is killed), so
``bragi backend install`` and ``remove`` can tell that a running server needs it: they
take the lock exclusively before they touch the folder. ``flock`` is local to one
machine (and unreliable on some network filesystems); where it does not exist at all,
:func:`in_use` says it cannot tell.

A new environment is built beside the old one and swapped in by two renames; a venv's
scripts name the folder they were made in, so those names are rewritten first
(:func:`relocate`; Bragi itself only runs ``bin/python``). The new one must import its
engine where it will live; if it does not, the old one is put back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["IN_USE_FILE", "exclusive", "hold", "in_use", "relocate", "staging_for", "swap_in"]

IN_USE_FILE = ".in-use"


def hold(environment: Path) -> IO[bytes] | None:
    """A shared lock on ``environment``, as an open file: it is in use while any process
    holds that file open (pass it to a worker, then close it)."""
    if fcntl is None:
        return None
    try:
        lock = open(environment / IN_USE_FILE, "ab")  # noqa: SIM115 (held until exit)
        fcntl.flock(lock, fcntl.LOCK_SH)
    except OSError:
        return None  # a read-only environment: it cannot be replaced under us either
    return lock


def in_use(environment: Path) -> bool | None:
    """Whether a running worker holds ``environment``; None when this system cannot tell."""
    if fcntl is None:
        return None
    with exclusive(environment) as free:
        return not free


@contextlib.contextmanager
def exclusive(environment: Path) -> Iterator[bool]:
    """Hold ``environment`` exclusively, if no worker holds it; yields whether it could."""
    path = environment / IN_USE_FILE
    if fcntl is None or not path.exists():
        yield True
        return
    with open(path, "ab") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def staging_for(target: Path) -> Path:
    """An empty folder beside ``target`` to build its replacement in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))


def relocate(venv: Path, old: Path, new: Path) -> None:
    """Point a venv's scripts and ``pyvenv.cfg`` at the folder it now lives in."""
    scripts = venv / ("Scripts" if os.name == "nt" else "bin")
    candidates = [venv / "pyvenv.cfg", *(scripts.iterdir() if scripts.is_dir() else ())]
    before, after = str(old).encode(), str(new).encode()
    for file in candidates:
        if file.is_symlink() or not file.is_file() or file.stat().st_size > 1 << 20:
            continue
        data = file.read_bytes()
        if before in data and b"\0" not in data:  # text: scripts, not executables
            file.write_bytes(data.replace(before, after))


def swap_in(staging: Path, target: Path, verify: Callable[[], None]) -> None:
    """Put ``staging`` where ``target`` is (keeping the old one until the new one passes
    ``verify`` there, and putting it back when it does not)."""
    relocate(staging, staging, target)
    old = target.with_name(f".{target.name}.old-{staging.name.rsplit('-', 1)[-1]}")
    had_old = target.exists()
    if had_old:
        os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        if had_old:
            os.rename(old, target)
        raise
    try:
        verify()
    except BaseException:
        failed = target.with_name(f"{old.name}-failed")
        os.rename(target, failed)
        if had_old:
            os.rename(old, target)
        shutil.rmtree(failed, ignore_errors=True)
        raise
    if had_old:
        shutil.rmtree(old, ignore_errors=True)
