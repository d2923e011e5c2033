"""The data dir holds API key hashes and cloned voices (recordings of people): whoever
creates it, Bragi makes it readable by the service user only."""

from __future__ import annotations

from pathlib import Path

__all__ = ["make_private_dir"]


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents as 0700; a folder that exists is left as
    it is (an operator may have shared it on purpose)."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)  # mkdir's mode is masked by the umask; this is not
    return path
