"""Model archives: a zip downloaded from the hub, unpacked safely into the store.

Some engines' models are published as one zip holding one model directory (Vosk's are:
``vosk-model-small-en-us-0.15.zip`` holds ``vosk-model-small-en-us-0.15/``). The zip has
passed the store's hash check by then, but its *contents* are still untrusted: every
entry is checked before anything is written, and what is written is counted again.

- Names: no absolute paths, no ``..``, no backslashes or NUL (a Windows separator could
  hide a ``..``); links and special files are refused outright (a model directory has no
  use for them, and refusing them is simpler than proving each target stays inside).
- Size: the declared sizes must fit under a cap (and on the disk) before extraction, and
  the bytes actually written are counted against the same cap (a zip bomb's headers lie).
- Atomic: extraction goes to a hidden temporary sibling that is renamed into place only
  when complete, so the target directory exists only whole, and unpacking again is a
  no-op. An error leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bragi.errors import DiskFullError, ModelFetchError

__all__ = ["ArchiveLimits", "model_root", "unpack_zip"]

_MB = 1024 * 1024
_CHUNK = 4 * _MB
_IGNORED = frozenset({"__MACOSX"})  # the resource forks macOS's zip adds beside the model


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """How big an archive may unpack (the largest Vosk models unpack to a few GB)."""

    max_bytes: int = 16 * 1024 * _MB
    max_entries: int = 100_000


def unpack_zip(archive: Path, target: Path, limits: ArchiveLimits | None = None) -> Path:
    """Unpack ``archive`` into ``target`` (once) and return the model directory inside.

    Raises :class:`ModelFetchError` (code ``bad_archive``) for a corrupt or unsafe archive
    and :class:`DiskFullError` when it cannot fit; neither leaves anything behind.
    """
    if target.is_dir():  # unpacked before: the rename below makes it whole or absent
        return model_root(target)
    limits = limits or ArchiveLimits()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _extract(archive, staging, limits)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared read-only
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():  # else another process finished first: use its copy
                raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise _bad(archive, f"it is not a readable zip ({exc})") from exc
    except OSError as exc:
        raise ModelFetchError(f"cannot unpack {archive.name} into {target.parent}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model_root(target)


def model_root(folder: Path) -> Path:
    """The directory that holds the model: the archive's one top-level folder (a zip of
    ``name/`` unpacks to ``target/name/``), else the archive's root. One level only: a
    model directory may well hold a single folder of its own."""
    entries = [e for e in folder.iterdir() if e.name not in _IGNORED]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return folder


def _extract(archive: Path, staging: Path, limits: ArchiveLimits) -> None:
    with zipfile.ZipFile(archive) as zipped:
        members = _checked(archive, zipped.infolist(), limits)
        declared = sum(info.file_size for info, _ in members)
        free = shutil.disk_usage(staging).free
        if declared > free:
            raise DiskFullError(
                f"no space left on device to unpack {archive.name}: it needs "
                f"{declared / _MB:.0f} MB, {free / _MB:.0f} MB free in {staging.parent}"
            )
        written = 0
        for info, relative in members:
            destination = staging.joinpath(*relative.parts)
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(info) as source, destination.open("xb") as out:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    if written > limits.max_bytes:
                        raise _too_big(archive, written, limits)
                    out.write(chunk)


def _checked(
    archive: Path, infos: list[zipfile.ZipInfo], limits: ArchiveLimits
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Every entry with its safe relative path, or the first reason to refuse the archive."""
    if len(infos) > limits.max_entries:
        raise _bad(archive, f"it has {len(infos)} entries, more than {limits.max_entries}")
    declared = sum(info.file_size for info in infos)
    if declared > limits.max_bytes:
        raise _too_big(archive, declared, limits)
    members = []
    for info in infos:
        relative = _relative(archive, info.filename)
        kind = stat.S_IFMT(info.external_attr >> 16)  # the Unix file type, when recorded
        if kind == stat.S_IFLNK:
            raise _bad(archive, f"{info.filename!r} is a symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _bad(archive, f"{info.filename!r} is not a regular file or directory")
        if info.flag_bits & 0x1:
            raise _bad(archive, f"{info.filename!r} is encrypted")
        if relative is not None:
            members.append((info, relative))
    if not any(not info.is_dir() for info, _ in members):
        raise _bad(archive, "it holds no files")
    return members


def _relative(archive: Path, name: str) -> PurePosixPath | None:
    """The entry's path inside the target; None for the archive's own root ("./")."""
    if "\\" in name or "\0" in name:
        raise _bad(archive, f"entry {name!r} has a backslash or NUL in its name")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or ":" in (path.parts[:1] or ("",))[0]:
        raise _bad(archive, f"entry {name!r} points outside the model directory")
    parts = [part for part in path.parts if part != "."]
    return PurePosixPath(*parts) if parts else None


def _bad(archive: Path, why: str) -> ModelFetchError:
    return ModelFetchError(f"the archive {archive.name} was refused: {why}", code="bad_archive")


def _too_big(archive: Path, size: int, limits: ArchiveLimits) -> ModelFetchError:
    return _bad(
        archive,
        f"it unpacks to {size / _MB:.0f} MB or more, over the limit of "
        f"{limits.max_bytes / _MB:.0f} MB",
    )
