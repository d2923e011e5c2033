"""The store's hub cache, file by file: what each cached commit holds, removing some of
its files, and checking them against the hub's hashes. Only through huggingface_hub's own
cache functions, so the cache stays one that other tools can read."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub as hf
from huggingface_hub import errors as hf_errors

from bragi.errors import ModelFetchError

__all__ = ["StoredCommit", "delete_files", "listing", "prune", "stored_commits", "verify"]

log = logging.getLogger("bragi.models.store")


@dataclass(frozen=True, slots=True)
class StoredCommit:
    """One cached commit of a repo, for deciding what to remove."""

    commit: str
    refs: frozenset[str]  # branch or tag names that point at it
    files: dict[str, int]  # repo path ─▶ size of its content on disk
    listing: frozenset[str] | None  # every repo path at that commit; None: no pull completed


def revisions(
    hub_dir: Path, repo_id: str, cache: hf.HFCacheInfo | None = None
) -> list[hf.CachedRevisionInfo]:
    """The cached revisions of a model repo (none when the cache does not exist)."""
    if cache is None:
        if not hub_dir.is_dir():
            return []
        cache = hf.scan_cache_dir(hub_dir)
    return [
        revision
        for repo in cache.repos
        if repo.repo_id == repo_id and repo.repo_type == "model"
        for revision in repo.revisions
    ]


def listing(hub_dir: Path, repo_id: str, commit: str) -> dict[str, int] | None:
    """File sizes of a commit, as cached by a completed pull; ``None`` if none was."""
    try:
        tree = hf.get_cached_repo_tree(repo_id, revision=commit, cache_dir=hub_dir)
    except hf_errors.CachedRepoTreeNotFoundError:
        return None
    return {file.path: file.size for file in tree}


def stored_commits(hub_dir: Path, repo_id: str) -> tuple[StoredCommit, ...]:
    found = []
    for revision in revisions(hub_dir, repo_id):
        sizes = listing(hub_dir, repo_id, revision.commit_hash)
        found.append(
            StoredCommit(
                commit=revision.commit_hash,
                refs=frozenset(revision.refs),
                files={_repo_path(f, revision): f.size_on_disk for f in revision.files},
                listing=frozenset(sizes) if sizes is not None else None,
            )
        )
    return tuple(found)


def delete_files(
    hub_dir: Path, repo_id: str, files: Mapping[str, Collection[str]], *, dry_run: bool
) -> int | None:
    """Delete repo paths from commits (``commit ─▶ paths``) and the blobs nothing else links
    to; the bytes freed (would be, with ``dry_run``), None when none of them is cached."""
    if not hub_dir.is_dir():
        return None
    cache = hf.scan_cache_dir(hub_dir)
    chosen = [
        file
        for revision in revisions(hub_dir, repo_id, cache)
        for file in revision.files
        if _repo_path(file, revision) in files.get(revision.commit_hash, ())
    ]
    if not chosen:
        return None
    strategy = cache.delete_files(*chosen)
    if not dry_run:
        strategy.execute()
        log.info("removed %d files of %s", len(chosen), repo_id)
    return strategy.expected_freed_size


def prune(hub_dir: Path, repo_id: str) -> bool:
    """Drop the empty folders and snapshots that removing files left; whether nothing of
    the repo is left (then the caller removes it whole)."""
    cached = revisions(hub_dir, repo_id)
    empty = [r.commit_hash for r in cached if not r.files]
    if len(empty) == len(cached):
        return True
    if empty:
        hf.scan_cache_dir(hub_dir).delete_revisions(*empty).execute()
    for revision in cached:
        for folder in sorted(revision.snapshot_path.rglob("*"), reverse=True):
            if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                folder.rmdir()
    return False


def verify(api: hf.HfApi, hub_dir: Path, repo_id: str, commit: str, label: str) -> None:
    """Hash a commit's files against the hub's listing; drop and report corrupt ones."""
    result = api.verify_repo_checksums(repo_id, revision=commit, cache_dir=hub_dir)
    if not result.mismatches:
        return
    bad = {mismatch["path"] for mismatch in result.mismatches}
    cache = hf.scan_cache_dir(hub_dir)
    corrupt = [
        file
        for revision in revisions(hub_dir, repo_id, cache)
        if revision.commit_hash == commit
        for file in revision.files
        if _repo_path(file, revision) in bad
    ]
    cache.delete_files(*corrupt).execute()  # so that the next pull downloads them again
    first = result.mismatches[0]
    raise ModelFetchError(
        f"{first['path']} from '{label}' failed its {first['algorithm']} check "
        f"(got {first['actual'][:12]}…, expected {first['expected'][:12]}…); "
        "the corrupt copy was removed, pull again",
        code="checksum_mismatch",
    )


def _repo_path(file: hf.CachedFileInfo, revision: hf.CachedRevisionInfo) -> str:
    return file.file_path.relative_to(revision.snapshot_path).as_posix()
