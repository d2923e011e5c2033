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
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx2
import huggingface_hub as hf
from huggingface_hub import errors as hf_errors
from huggingface_hub.file_download import repo_folder_name

# The very filter snapshot_download applies (re-exported without __all__, hence the ignore).
from huggingface_hub.utils import filter_repo_objects  # type: ignore[attr-defined]

from bragi.errors import (
    DiskFullError,
    HubUnreachableError,
    ModelFetchError,
    ModelRepoGatedError,
    ModelRepoNotFoundError,
)
from bragi.models.progress import DownloadProgress, ProgressCallback, PullTracker, SilentBar

__all__ = ["DownloadProgress", "HubSource", "ModelStore", "StoredModel"]

log = logging.getLogger("bragi.models.store")

_MB = 1024 * 1024
_UNREACHABLE = (
    hf_errors.LocalEntryNotFoundError,  # what hf_hub_download raises once it gives up
    hf_errors.OfflineModeIsEnabled,
    httpx2.ConnectError,
    httpx2.ConnectTimeout,
)


@dataclass(frozen=True, slots=True)
class HubSource:
    """A hub repo at a revision (``None``: the default branch), limited to some files."""

    repo_id: str
    revision: str | None = None
    allow_patterns: tuple[str, ...] | None = None

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id

    @property
    def patterns(self) -> list[str] | None:
        return list(self.allow_patterns) if self.allow_patterns is not None else None


@dataclass(frozen=True, slots=True)
class StoredModel:
    """A complete, verified snapshot in the store."""

    repo_id: str
    commit: str
    refs: tuple[str, ...]  # branch or tag names that point at this commit, e.g. ("main",)
    path: Path
    size_bytes: int


class ModelStore:
    """Downloads hub repos into ``root`` and answers what is already there."""

    def __init__(
        self,
        root: Path,
        *,
        token: str | None = None,
        offline: bool | None = None,
        endpoint: str | None = None,
    ):
        self.root = root
        self.hub_dir = root / "hub"
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
        """Make sure ``source`` is in the store and return its snapshot directory.

        Online, this asks the hub what ``source.revision`` points at and downloads what
        is missing; files already in the store are not downloaded again. Offline (or if
        the hub cannot be reached) it returns the stored copy, if there is one.
        """
        if self.offline:
            stored = self.local_path(source)
            if stored is None:
                raise HubUnreachableError(
                    f"offline mode is on (HF_HUB_OFFLINE) and '{source}' is not in the model store"
                )
            return stored
        try:
            return self._pull(source, progress)
        except ModelFetchError:
            raise
        except Exception as exc:
            error = self._translate(exc, source)
            if error is None:
                raise
            raise error from exc

    def local_path(self, source: HubSource) -> Path | None:
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
        found = [
            StoredModel(
                repo_id=repo.repo_id,
                commit=revision.commit_hash,
                refs=tuple(sorted(revision.refs)),
                path=revision.snapshot_path,
                size_bytes=revision.size_on_disk,
            )
            for repo in hf.scan_cache_dir(self.hub_dir).repos
            if repo.repo_type == "model"
            for revision in repo.revisions
            if self._listing(repo.repo_id, revision.commit_hash) is not None
        ]
        return sorted(found, key=lambda model: (model.repo_id, model.refs, model.commit))

    def remove(self, source: HubSource | str) -> int:
        """Delete every stored revision of a repo, partial downloads included; bytes freed."""
        repo_id = source.repo_id if isinstance(source, HubSource) else source
        freed = 0
        if self.hub_dir.is_dir():
            cache = hf.scan_cache_dir(self.hub_dir)
            commits = [
                revision.commit_hash
                for repo in cache.repos
                if repo.repo_id == repo_id and repo.repo_type == "model"
                for revision in repo.revisions
            ]
            if commits:
                strategy = cache.delete_revisions(*commits)
                strategy.execute()
                freed += strategy.expected_freed_size
        # What the cache scan does not cover: an interrupted first pull, stray partials.
        folder = repo_folder_name(repo_id=repo_id, repo_type="model")
        for leftover in (self.hub_dir / folder, self.hub_dir / ".locks" / folder):
            if leftover.is_dir():
                freed += sum(p.lstat().st_size for p in leftover.rglob("*") if p.is_file())
                shutil.rmtree(leftover, ignore_errors=True)
        log.info("removed %s (%.1f MB freed)", repo_id, freed / _MB)
        return freed

    def _pull(self, source: HubSource, progress: ProgressCallback | None) -> Path:
        repo, api = source.repo_id, hf.HfApi(endpoint=self.endpoint, token=self._token)
        try:
            info = api.model_info(repo, revision=source.revision, files_metadata=True)
        except (httpx2.TransportError, hf_errors.OfflineModeIsEnabled):
            stored = self.local_path(source)
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
        """Hash the snapshot against the hub's listing; drop and report corrupt files."""
        result = api.verify_repo_checksums(source.repo_id, revision=commit, cache_dir=self.hub_dir)
        if not result.mismatches:
            return
        bad = {mismatch["path"] for mismatch in result.mismatches}
        cache = hf.scan_cache_dir(self.hub_dir)
        corrupt = [
            file
            for repo in cache.repos
            if repo.repo_id == source.repo_id
            for revision in repo.revisions
            if revision.commit_hash == commit
            for file in revision.files
            if file.file_path.relative_to(revision.snapshot_path).as_posix() in bad
        ]
        cache.delete_files(*corrupt).execute()  # so that the next pull downloads them again
        first = result.mismatches[0]
        raise ModelFetchError(
            f"{first['path']} from '{source}' failed its {first['algorithm']} check "
            f"(got {first['actual'][:12]}…, expected {first['expected'][:12]}…); "
            "the corrupt copy was removed, pull again",
            code="checksum_mismatch",
        )

    def _listing(self, repo_id: str, commit: str) -> dict[str, int] | None:
        """File sizes of a commit, as cached by a completed pull; ``None`` if none was."""
        try:
            tree = hf.get_cached_repo_tree(repo_id, revision=commit, cache_dir=self.hub_dir)
        except hf_errors.CachedRepoTreeNotFoundError:
            return None
        return {file.path: file.size for file in tree}

    def _translate(self, exc: Exception, source: HubSource) -> ModelFetchError | None:
        """One clear line for each way a pull fails; ``None`` for errors not ours to name."""
        repo, hub, why = source.repo_id, f"the hub ({self.endpoint})", _first_line(exc)
        missing = "was not found on the Hugging Face hub"
        if isinstance(exc, hf_errors.GatedRepoError):
            if self._token is None:
                how = "accept its licence on the hub and set HF_TOKEN"
                return ModelRepoGatedError(f"Model repo '{repo}' is gated: {how}")
            how = f"the token has no access: accept its licence at {self.endpoint}/{repo}"
            return ModelRepoGatedError(f"Model repo '{repo}' is gated and {how}")
        if isinstance(exc, hf_errors.RevisionNotFoundError):
            rev = source.revision
            return ModelRepoNotFoundError(f"Revision '{rev}' of model repo '{repo}' {missing}")
        if isinstance(exc, hf_errors.RepositoryNotFoundError):
            hint = "" if self._token else " (if it is private, set HF_TOKEN)"
            return ModelRepoNotFoundError(f"Model repo '{repo}' {missing}{hint}")
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # e.g. writing a ref
            return DiskFullError(f"no space left on device in {self.hub_dir} for '{source}'")
        if isinstance(exc, _UNREACHABLE):
            return HubUnreachableError(f"cannot reach {hub} and no cached copy of '{source}'")
        if isinstance(exc, httpx2.TransportError):
            return HubUnreachableError(f"lost the connection to {hub} during '{source}': {why}")
        if isinstance(exc, hf_errors.HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else "an error"
            return ModelFetchError(f"{hub} answered HTTP {status} while downloading '{source}'")
        if isinstance(exc, hf_errors.HFValidationError):
            return ModelRepoNotFoundError(f"'{repo}' is not a valid hub repo id: {why}")
        if isinstance(exc, OSError):  # e.g. the size check of a short download
            return ModelFetchError(f"downloading '{source}' failed: {why}")
        return None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
