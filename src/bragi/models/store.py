"""The model store: pulls model files from the Hugging Face hub into Bragi's data dir.

Files live in ``<root>/hub``, a standard huggingface_hub cache (blobs, snapshots, refs)
that is only touched through the library, so other tools can read it too.

huggingface_hub does the downloading: it resumes a dropped connection with a Range
request, checks each file's size, writes to a temporary file and renames it into
place only when complete. The store adds a free-space check, per-file progress, a
checksum pass (sha256 for LFS files, git-sha1 for the rest), and one-line errors from
:mod:`bragi.errors`. A pull has the repo's file listing cached only once every file is
in place and verified, so a snapshot without one is an interrupted pull, never
mistaken for a complete model.

A source may name an archive (a zip holding the model directory, as Vosk publishes
them): after the hash check it is unpacked (:mod:`bragi.models.archive`) into
``<root>/unpacked/<repo folder>/<commit>/<archive>/`` and the model directory inside is
what the store returns. The zip itself is kept in the hub cache: the cache stays a valid
huggingface_hub cache (its listing is what tells a complete pull from an interrupted
one), a re-pull checks it without downloading, and a damaged unpacked copy can be made
again offline. The price is the zip's size on disk a second time; ``bragi rm`` removes
both.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx2
import huggingface_hub as hf
from huggingface_hub import errors as hf_errors
from huggingface_hub.file_download import repo_folder_name

# The very filter snapshot_download applies (re-exported without __all__, hence the ignore).
from huggingface_hub.utils import filter_repo_objects  # type: ignore[attr-defined]

from bragi.errors import DiskFullError, HubUnreachableError, ModelFetchError
from bragi.models import hubcache
from bragi.models.archive import ArchiveLimits, model_root, unpack_zip
from bragi.models.hub_errors import hub_error
from bragi.models.hubcache import StoredCommit
from bragi.models.progress import DownloadProgress, ProgressCallback, PullTracker, SilentBar

__all__ = [
    "ArchiveLimits",
    "DownloadProgress",
    "HubSource",
    "ModelStore",
    "StoredCommit",
    "StoredModel",
]

log = logging.getLogger("bragi.models.store")

_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HubSource:
    """A hub repo at a revision (``None``: the default branch), limited to some files, or
    one archive file (a zip of the model directory) that is unpacked after download.
    ``subdir`` is the repo folder that holds the model (a Piper voice in
    ``rhasspy/piper-voices``), else the model is the repo's root."""

    repo_id: str
    revision: str | None = None
    allow_patterns: tuple[str, ...] | None = None
    archive: str | None = None  # path of a .zip in the repo; then only it is downloaded
    subdir: str | None = None

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id

    @property
    def patterns(self) -> list[str] | None:
        if self.archive is not None:
            return [self.archive]
        return list(self.allow_patterns) if self.allow_patterns is not None else None


@dataclass(frozen=True, slots=True)
class StoredModel:
    """A complete, verified snapshot in the store."""

    repo_id: str
    commit: str
    refs: tuple[str, ...]  # branch or tag names that point at this commit, e.g. ("main",)
    path: Path
    size_bytes: int  # the snapshot's files and what was unpacked from its archives
    unpacked: tuple[Path, ...] = ()  # model directories unpacked from its archives


class ModelStore:
    """Downloads hub repos into ``root`` and answers what is already there."""

    def __init__(
        self,
        root: Path,
        *,
        token: str | None = None,
        offline: bool | None = None,
        endpoint: str | None = None,
        archive_limits: ArchiveLimits | None = None,
        downloads: bool = True,
    ):
        self.root = root
        self.downloads = downloads  # False: only what is stored (a server's allow_downloads)
        self.hub_dir = root / "hub"
        self.unpacked_dir = root / "unpacked"
        self.archive_limits = archive_limits or ArchiveLimits()
        self._token = token if token is not None else (os.environ.get("HF_TOKEN") or None)
        self.offline = offline if offline is not None else _env_flag("HF_HUB_OFFLINE")
        # huggingface_hub reads HF_ENDPOINT once, at import; read it here so that a
        # store built later (a test, a reloaded config) sees the current value.
        chosen = endpoint or os.environ.get("HF_ENDPOINT") or hf.constants.ENDPOINT
        self.endpoint = chosen.rstrip("/")
        # What every huggingface_hub call here is given.
        self._hub: dict[str, Any] = {
            "cache_dir": self.hub_dir,
            "endpoint": self.endpoint,
            "token": self._token,
        }

    def fetch(self, source: HubSource, progress: ProgressCallback | None = None) -> Path:
        """Make sure ``source`` is in the store and return its snapshot directory (for an
        archive: the model directory unpacked from it).

        Online, this asks the hub what ``source.revision`` points at and downloads what
        is missing; files already in the store are not downloaded again. Offline (or if
        the hub cannot be reached) it returns the stored copy, if there is one.
        """
        if self.offline or not self.downloads:
            stored = self._snapshot(source)
            if stored is None and not self.downloads:
                raise HubUnreachableError(
                    f"downloads are off (allow_downloads: false) and '{source}' is not in the "
                    "model store; pull it where downloads are allowed (bragi pull)",
                    code="downloads_disabled",
                )
            if stored is None:
                raise HubUnreachableError(
                    f"offline mode is on (HF_HUB_OFFLINE) and '{source}' is not in the model store"
                )
            return self._model_dir(source, stored)
        try:
            snapshot = self._pull(source, progress)
        except ModelFetchError:
            raise
        except Exception as exc:
            error = hub_error(exc, source, self.endpoint, self._token, self.hub_dir)
            if error is None:
                raise
            raise error from exc
        return self._model_dir(source, snapshot)

    def local_path(self, source: HubSource) -> Path | None:
        """The stored model directory for ``source``, complete and verified (for an archive:
        unpacked), without any network."""
        snapshot = self._snapshot(source)
        if snapshot is None:
            return None
        if source.archive is None:
            return _inside(snapshot, source.subdir)
        target = self.unpacked_target(source, snapshot.name)
        return model_root(target) if target.is_dir() else None

    def _snapshot(self, source: HubSource) -> Path | None:
        """The stored snapshot for ``source``, complete and verified, without any network."""
        revision, patterns = source.revision, source.patterns
        try:
            found = hf.snapshot_download(
                source.repo_id,
                revision=revision,
                allow_patterns=patterns,
                local_files_only=True,
                **self._hub,
            )
        except (hf_errors.LocalEntryNotFoundError, hf_errors.HFValidationError):
            return None
        snapshot = Path(found)
        sizes = self._listing(source.repo_id, snapshot.name)
        if sizes is None:
            return None
        for name in filter_repo_objects(list(sizes), allow_patterns=patterns):
            file = snapshot / name
            if not file.is_file() or file.stat().st_size != sizes[name]:
                return None
        return snapshot

    def list(self) -> list[StoredModel]:
        """Every complete snapshot in the store, by repo id."""
        if not self.hub_dir.is_dir():
            return []
        found = []
        for repo in hf.scan_cache_dir(self.hub_dir).repos:
            if repo.repo_type != "model":
                continue
            for revision in repo.revisions:
                commit = revision.commit_hash
                if self._listing(repo.repo_id, commit) is None:
                    continue
                folder = self.unpacked_folder(repo.repo_id) / commit
                unpacked = sorted(folder.glob("[!.]*")) if folder.is_dir() else []
                extra = sum(_size(path) for path in unpacked)
                found.append(
                    StoredModel(
                        repo_id=repo.repo_id,
                        commit=commit,
                        refs=tuple(sorted(revision.refs)),
                        path=revision.snapshot_path,
                        size_bytes=revision.size_on_disk + extra,
                        unpacked=tuple(model_root(path) for path in unpacked),
                    )
                )
        return sorted(found, key=lambda model: (model.repo_id, model.refs, model.commit))

    def remove(self, source: HubSource | str) -> int:
        """Delete every stored revision of a repo, partial downloads included; bytes freed."""
        repo_id = source.repo_id if isinstance(source, HubSource) else source
        freed = 0
        if self.hub_dir.is_dir():
            cache = hf.scan_cache_dir(self.hub_dir)
            commits = _commits(cache, repo_id)
            if commits:
                strategy = cache.delete_revisions(*commits)
                strategy.execute()
                freed += strategy.expected_freed_size
        # What the cache scan does not cover: an interrupted first pull, stray partials,
        # and what was unpacked from archives.
        folder = repo_folder_name(repo_id=repo_id, repo_type="model")
        locks, unpacked = self.hub_dir / ".locks" / folder, self.unpacked_folder(repo_id)
        for leftover in (self.hub_dir / folder, locks, unpacked):
            if leftover.is_dir():
                freed += _size(leftover)
                shutil.rmtree(leftover, ignore_errors=True)
        log.info("removed %s (%.1f MB freed)", repo_id, freed / _MB)
        return freed

    def commits(self, repo_id: str) -> tuple[StoredCommit, ...]:
        """The cached commits of ``repo_id`` and the files each holds."""
        return hubcache.stored_commits(self.hub_dir, repo_id)

    def remove_files(
        self, repo_id: str, files: Mapping[str, Collection[str]], *, dry_run: bool = False
    ) -> int:
        """Delete repo paths from cached commits (``commit ─▶ paths``) with the blobs no
        other cached file links to; a snapshot left empty goes with its refs, and a repo
        left with none goes whole. Bytes freed (that would be, with ``dry_run``)."""
        freed = hubcache.delete_files(self.hub_dir, repo_id, files, dry_run=dry_run)
        if freed is None or dry_run:
            return freed or 0
        if hubcache.prune(self.hub_dir, repo_id):  # nothing of the repo is left
            freed += self.remove(repo_id)
        return freed

    def _pull(self, source: HubSource, progress: ProgressCallback | None) -> Path:
        repo, api = source.repo_id, hf.HfApi(endpoint=self.endpoint, token=self._token)
        try:
            info = api.model_info(repo, revision=source.revision, files_metadata=True)
        except (httpx2.TransportError, hf_errors.OfflineModeIsEnabled):
            stored = self._snapshot(source)
            if stored is None:
                raise
            log.warning("cannot reach the hub (%s): using the stored %s", self.endpoint, source)
            return stored
        if info.sha is None:
            raise ModelFetchError(f"the hub ({self.endpoint}) sent no commit for '{source}'")
        commit, siblings = info.sha, info.siblings or []
        sizes = {s.rfilename: (s.lfs.size if s.lfs else s.size) or 0 for s in siblings}
        wanted = sorted(filter_repo_objects(list(sizes), allow_patterns=source.patterns))
        if not wanted:
            raise ModelFetchError(f"no file of '{source}' matches {source.patterns}")
        cached = {name for name in wanted if self._is_cached(repo, name, commit)}
        needed = sum(sizes[name] for name in wanted if name not in cached)
        self._check_free_space(source, needed)

        tracker = PullTracker(repo, {name: sizes[name] for name in wanted}, progress)
        bar = cast(Any, tracker.bar_class)  # tqdm-shaped, not a tqdm subclass
        try:
            for name in wanted:
                tracker.start(name)
                if name not in cached:  # by commit, so that every file comes from that one
                    hf.hf_hub_download(repo, name, revision=commit, tqdm_class=bar, **self._hub)
                tracker.finish(name)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            raise DiskFullError(
                f"no space left on device while downloading '{source}' "
                f"(need {needed / _MB:.0f} MB in {self.hub_dir})"
            ) from exc
        if needed or self._listing(repo, commit) is None:  # new files, or a pull cut short
            self._verify(api, source, commit)
        # Every file is in place and verified: this downloads nothing, it caches the
        # revision's ref and the repo listing, which local_path() relies on.
        revision, patterns, silent = source.revision, source.patterns, cast(Any, SilentBar)
        snapshot = Path(
            hf.snapshot_download(
                repo, revision=revision, allow_patterns=patterns, tqdm_class=silent, **self._hub
            )
        )
        if snapshot.name != commit:
            raise ModelFetchError(f"'{source}' changed on the hub during the download; pull again")
        took, mb = tracker.elapsed(), needed / _MB
        log.info(
            "pulled %s (%d files, %.1f MB downloaded) in %.1f s", source, len(wanted), mb, took
        )
        return snapshot

    def _model_dir(self, source: HubSource, snapshot: Path) -> Path:
        """The model directory: the snapshot (or its ``subdir``), or what its archive
        unpacks to (once)."""
        if source.archive is None:
            return _inside(snapshot, source.subdir)
        target = self.unpacked_target(source, snapshot.name)
        try:
            return unpack_zip(snapshot / source.archive, target, self.archive_limits)
        except ModelFetchError as exc:
            if exc.code == "bad_archive":  # a refused archive stays refused: drop it
                self.remove_files(source.repo_id, {snapshot.name: [source.archive]})
                with contextlib.suppress(OSError):  # the commit's folder, unless another
                    target.parent.rmdir()  # archive of it was unpacked there
            raise

    def unpacked_folder(self, repo_id: str) -> Path:
        """Where what was unpacked from ``repo_id``'s archives lives, by commit."""
        return self.unpacked_dir / repo_folder_name(repo_id=repo_id, repo_type="model")

    def unpacked_target(self, source: HubSource, commit: str) -> Path:
        """``<root>/unpacked/models--org--name/<commit>/<archive path, '/' as '--'>``."""
        assert source.archive is not None
        name = source.archive.strip("/").replace("/", "--")
        if name.lower().endswith(".zip"):
            name = name[: -len(".zip")]
        return self.unpacked_folder(source.repo_id) / commit / name

    def _check_free_space(self, source: HubSource, needed: int) -> None:
        self.hub_dir.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.hub_dir).free
        if needed > free:
            raise DiskFullError(
                f"no space left on device for '{source}' "
                f"(need {needed / _MB:.0f} MB, {free / _MB:.0f} MB free in {self.hub_dir})"
            )

    def _is_cached(self, repo_id: str, name: str, commit: str) -> bool:
        found = hf.try_to_load_from_cache(repo_id, name, cache_dir=self.hub_dir, revision=commit)
        return isinstance(found, str)  # not None, nor the "known to be missing" marker

    def _verify(self, api: hf.HfApi, source: HubSource, commit: str) -> None:
        hubcache.verify(api, self.hub_dir, source.repo_id, commit, str(source))

    def _listing(self, repo_id: str, commit: str) -> dict[str, int] | None:
        return hubcache.listing(self.hub_dir, repo_id, commit)


def _commits(cache: hf.HFCacheInfo, repo_id: str) -> list[str]:
    """The commits of a model repo that the cache holds."""
    return [
        revision.commit_hash
        for repo in cache.repos
        if repo.repo_id == repo_id and repo.repo_type == "model"
        for revision in repo.revisions
    ]


def _inside(snapshot: Path, subdir: str | None) -> Path:
    """The model directory inside a snapshot."""
    return snapshot.joinpath(*subdir.split("/")) if subdir else snapshot


def _size(path: Path) -> int:
    """Bytes of the files under ``path`` (links not followed)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
