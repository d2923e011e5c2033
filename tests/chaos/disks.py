"""Small real file systems for chaos tests: a tmpfs of a chosen size, which the test can
fill (``fill``) or turn read-only under the server (``read_only``, a read-only bind
mount over it: files the server holds open stay writable, everything it opens anew
fails with EROFS, as after a disk is remounted read-only).

Mounting needs root with CAP_SYS_ADMIN: as another user the mounts go through
``sudo -n`` (as on CI machines with passwordless sudo), the tmpfs owned by that user;
without either the tests that need a disk are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["SmallDisk", "small_disk"]


_AS_ROOT = () if os.geteuid() == 0 else ("sudo", "-n")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run((*_AS_ROOT, *command), capture_output=True, text=True, check=False)


class SmallDisk:
    def __init__(self, path: Path, size: int):
        self.path = path
        self.size = size
        self._fillers = 0

    def free(self) -> int:
        return os.statvfs(self.path).f_bavail * os.statvfs(self.path).f_frsize

    def fill(self, leave: int = 0) -> Path:
        """Take all the free space but ``leave`` bytes, with a file of its own."""
        self._fillers += 1
        filler = self.path / f".filler-{self._fillers}"
        with open(filler, "wb", buffering=0) as out:
            for block in (b"\0" * 65_536, b"\0" * 4096, b"\0"):
                with contextlib.suppress(OSError):  # ENOSPC: full, at this block size
                    while self.free() >= leave + len(block):
                        out.write(block)
        return filler

    def empty(self) -> None:
        for filler in self.path.glob(".filler-*"):
            filler.unlink()

    @contextlib.contextmanager
    def read_only(self) -> Iterator[None]:
        """Everything opened anew under the disk fails with EROFS, until the block ends."""
        done = _run("mount", "--bind", "-o", "ro", str(self.path), str(self.path))
        if done.returncode != 0:
            pytest.fail(f"cannot bind-mount {self.path} read-only: {done.stderr.strip()}")
        try:
            yield
        finally:
            _run("umount", str(self.path))


@contextlib.contextmanager
def small_disk(path: Path, size: int) -> Iterator[SmallDisk]:
    """A tmpfs of ``size`` bytes at ``path`` for the block; skips when none can be made."""
    path.mkdir(parents=True, exist_ok=True)
    owner = f"uid={os.getuid()},gid={os.getgid()}"
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755,{owner}", "tmpfs", str(path))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root with CAP_SYS_ADMIN): {done.stderr}")
    try:
        yield SmallDisk(path, size)
    finally:
        # Lazily: a server thread may still hold a file open while the test tears down.
        while _run("umount", "-l", str(path)).returncode == 0:
            pass  # a read-only bind mount left on top goes first, then the tmpfs
