"""Removing a model from the store: only what that model alone uses.

``bragi rm NAME`` and ``DELETE /admin/models/NAME`` share this plan. A catalog entry owns
the files its ``files`` patterns (or its ``archive``) match in every cached commit of its
repo, what was unpacked from that archive, and its copy assembled from PyPI packages
(``packaged/NAME``); a hub repo id owns the whole repo. Of these:

- a file stays when another catalog entry is stored from it: a complete pull of that entry
  at that commit (the two Parakeet exports share ``config.json`` and ``vocab.txt``);
- a file a configured model uses (in any state: downloading, loading, loaded) stops the
  removal: :attr:`Removal.users` names those models, and only ``force`` takes it anyway.

The plan says what goes and what stays before anything is deleted (``--dry-run``).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import filter_repo_objects  # type: ignore[attr-defined]

from bragi.config import Settings
from bragi.errors import ConfigError, InvalidRequestError, NotFoundError
from bragi.models.catalog import Catalog, CatalogEntry
from bragi.models.packaged import in_place_folder, packaged_dir, packages
from bragi.models.resolve import ModelSource, plan_source
from bragi.models.starter import starter_models
from bragi.models.store import HubSource, ModelStore, StoredCommit

__all__ = ["Item", "Removal", "configured_sources", "plan_removal", "remove"]

log = logging.getLogger(__name__)
_MB = 1024 * 1024
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True, slots=True)
class Item:
    """A file or folder a removal deletes or keeps."""

    label: str  # "rhasspy/piper-voices@10539fc en/en_US/.../x.onnx"
    size: int  # bytes on disk (its content may be shared, see Removal.freed_bytes)
    why: str = ""  # why it stays


@dataclass(frozen=True)
class Removal:
    """What removing ``name`` deletes and keeps, decided before anything is deleted."""

    name: str
    deleted: tuple[Item, ...]
    kept: tuple[Item, ...]
    users: tuple[str, ...]  # configured models that use what would be deleted
    freed_bytes: int
    note: str = ""  # e.g. where files that are not the store's live
    #: repo id ─▶ commit ─▶ repo paths (the model's repo and its companions')
    hub_files: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    folders: tuple[Path, ...] = ()  # unpacked and assembled copies

    def summary(self, *, done: bool) -> str:
        verb = "deleted" if done else "would delete"
        files = f"{len(self.deleted)} file" + ("" if len(self.deleted) == 1 else "s")
        text = f"{verb} {self.name}: {files}, {self.freed_bytes / _MB:.1f} MB freed"
        if self.kept:
            text += f"; kept {len(self.kept)} shared with other models"
        return text + (f"; {self.note}" if self.note else "")

    def lines(self) -> list[str]:
        """Every item, for a listing."""
        out = [f"  delete {item.label} ({item.size / _MB:.1f} MB)" for item in self.deleted]
        out += [f"  keep   {item.label} ({item.why})" for item in self.kept]
        return out


@dataclass(frozen=True, slots=True)
class _Claim:
    """Who else wants files of the repo: at which commits (None: any), which paths."""

    who: str
    patterns: tuple[str, ...] | None  # None: every file
    commits: frozenset[str] | None
    complete: bool  # a catalog entry counts only where its pull is complete

    def wants(self, stored: StoredCommit, path: str) -> bool:
        if self.commits is not None and stored.commit not in self.commits:
            return False
        if not _matches(path, self.patterns):
            return False
        if not self.complete:
            return True
        wanted = [p for p in (stored.listing or ()) if _matches(p, self.patterns)]
        return bool(wanted) and all(p in stored.files for p in wanted)


def plan_removal(
    reference: str,
    store: ModelStore,
    catalog: Catalog,
    configured: Mapping[str, ModelSource],
    *,
    force: bool = False,
) -> Removal:
    """What removing ``reference`` (a catalog name or a hub repo id) would do.

    ``configured`` are the served models (a label such as "`tts-1` (loaded)" ─▶ source).
    Raises NotFoundError when nothing of it is stored.
    """
    entry, hub = _target(reference, catalog)
    plan = _Plan()
    if hub is not None:
        _plan_hub(plan, hub, entry, store, catalog, configured, force)
    for companion in entry.companions if entry is not None else ():
        # another repo the model needs (F5-TTS's vocoder): it goes with the model
        source = HubSource(companion.repo, companion.revision, companion.files)
        _plan_hub(plan, source, entry, store, catalog, configured, force)
    note = ""
    if entry is not None and entry.packaged is not None:
        note = _plan_packaged(plan, entry, store, configured, force)
    if not plan.deleted and not plan.kept and not plan.users:
        raise NotFoundError(f"{reference} is not downloaded", code="model_not_downloaded")
    freed = sum(_size(folder) for folder in plan.folders)
    for repo_id, files in plan.hub_files.items():
        freed += store.remove_files(repo_id, files, dry_run=True)
    return Removal(
        name=reference,
        deleted=tuple(plan.deleted),
        kept=tuple(plan.kept),
        users=tuple(sorted(plan.users)),
        freed_bytes=freed,
        note=note,
        hub_files=plan.hub_files,
        folders=tuple(plan.folders),
    )


@dataclass
class _Plan:
    deleted: list[Item] = field(default_factory=list)
    kept: list[Item] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    hub_files: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    folders: list[Path] = field(default_factory=list)

    def delete_folder(self, folder: Path, root: Path, what: str = "") -> None:
        self.deleted.append(Item(f"{folder.relative_to(root)}/{what}", _size(folder)))
        self.folders.append(folder)


def _plan_hub(
    plan: _Plan,
    hub: HubSource,
    entry: CatalogEntry | None,
    store: ModelStore,
    catalog: Catalog,
    configured: Mapping[str, ModelSource],
    force: bool,
) -> None:
    """The target's files in the hub cache, and what was unpacked from its archives."""
    claims = _claims(hub.repo_id, entry, catalog, store)
    configured_claims = _configured_claims(hub.repo_id, configured)
    staying: set[tuple[str, str]] = set()  # (commit, path) of the target's files that stay
    commits = store.commits(hub.repo_id)
    for stored in commits:
        for path in sorted(p for p in stored.files if _matches(p, hub.patterns)):
            item = Item(f"{hub.repo_id}@{stored.commit[:7]} {path}", stored.files[path])
            others = sorted({c.who for c in claims if c.wants(stored, path)})
            using = {c.who for c in configured_claims if c.wants(stored, path)}
            if others:
                plan.kept.append(Item(item.label, item.size, "also part of " + ", ".join(others)))
            else:
                plan.users |= using
            if others or (using and not force):
                staying.add((stored.commit, path))
                continue
            plan.deleted.append(item)
            plan.hub_files.setdefault(hub.repo_id, {}).setdefault(stored.commit, set()).add(path)
    for folder, origin in _unpacked(store, hub, commits).items():
        if origin not in staying:  # its zip goes (or went before): so does it
            plan.delete_folder(folder, store.root)
    partial = store.hub_dir / repo_folder_name(repo_id=hub.repo_id, repo_type="model")
    if entry is None and not any(c.files for c in commits) and partial.is_dir():
        plan.delete_folder(partial, store.root, " (a download that never completed)")


def _plan_packaged(
    plan: _Plan,
    entry: CatalogEntry,
    store: ModelStore,
    configured: Mapping[str, ModelSource],
    force: bool,
) -> str:
    """The copy assembled from PyPI packages; a note when the model is used in place."""
    assert entry.packaged is not None
    assembled = packaged_dir(store.root, entry.name)
    if assembled.is_dir():
        using = {label for label, source in configured.items() if _uses_package(source, entry)}
        plan.users |= using
        if not using or force:
            plan.delete_folder(assembled, store.root)
    in_place = in_place_folder(entry.packaged)
    if in_place is None or not in_place.is_dir():
        return ""
    # Used in place: the store holds only the record of its hash check.
    names = " ".join(packages(entry.packaged))
    return (
        f"its files ({_size(in_place) / _MB:.0f} MB) are the PyPI package {names}, "
        f"which Bragi does not uninstall: pip uninstall {names}"
    )


def configured_sources(settings: Settings, catalog: Catalog) -> dict[str, ModelSource]:
    """The models ``settings`` serve (the starter set without ``models:``), for
    :func:`plan_removal`; one that names nothing resolvable uses no files."""
    configs = settings.models if settings.models is not None else starter_models(catalog)
    found = {}
    for alias, config in configs.items():
        try:
            found[f"`{alias}`"] = plan_source(config.model, config.revision, catalog)
        except ConfigError:
            continue
    return found


def remove(removal: Removal, store: ModelStore) -> int:
    """Carry out a plan; the bytes freed."""
    freed = 0
    for repo_id, files in removal.hub_files.items():
        freed += store.remove_files(repo_id, files)
    for folder in removal.folders:
        if folder.is_dir():
            freed += _size(folder)
            shutil.rmtree(folder, ignore_errors=True)
    log.info("removed %s (%.1f MB freed)", removal.name, freed / _MB)
    return freed


def _target(reference: str, catalog: Catalog) -> tuple[CatalogEntry | None, HubSource | None]:
    try:
        source = plan_source(reference, None, catalog)
    except ConfigError as exc:
        raise NotFoundError(exc.message, code="model_not_found") from None
    if source.path is not None:
        raise InvalidRequestError(f"{reference} is a local directory; Bragi does not delete those")
    entry = source.catalog
    if entry is None:
        return None, HubSource(reference)  # a repo id: all of it
    if entry.repo is None:
        return entry, None
    return entry, HubSource(entry.repo, entry.revision, entry.files, entry.archive, entry.subdir)


def _claims(
    repo_id: str, target: CatalogEntry | None, catalog: Catalog, store: ModelStore
) -> list[_Claim]:
    """Other catalog entries from the same repo (none when a whole repo is removed), and
    downloaded ones that need it as a companion (F5-TTS v0 beside v1 needs its vocoder)."""
    if target is None:
        return []
    claims = [
        _Claim(other.name, _patterns(other.files, other.archive), _at(other.revision), True)
        for other in catalog.entries()
        if other.repo == repo_id and other.name != target.name
    ]
    for other in catalog.entries():
        if other.name == target.name or other.repo is None:
            continue
        for companion in other.companions:
            main = HubSource(other.repo, other.revision, other.files)
            if companion.repo == repo_id and store.local_path(main) is not None:
                claims.append(_Claim(other.name, companion.files, _at(companion.revision), True))
    return claims


def _configured_claims(repo_id: str, configured: Mapping[str, ModelSource]) -> list[_Claim]:
    claims = []
    for label, source in configured.items():
        for hub in (source.hub, *(companion for _, companion in source.companions)):
            if hub is not None and hub.repo_id == repo_id:
                patterns = _patterns(hub.allow_patterns, hub.archive)
                claims.append(_Claim(label, patterns, _at(hub.revision), False))
    return claims


def _uses_package(source: ModelSource, entry: CatalogEntry) -> bool:
    return source.packaged and source.catalog is not None and source.catalog.name == entry.name


def _at(revision: str | None) -> frozenset[str] | None:
    """The commits a revision names, when it names one (a pinned commit)."""
    return frozenset({revision}) if revision is not None and _COMMIT.match(revision) else None


def _patterns(files: tuple[str, ...] | None, archive: str | None) -> tuple[str, ...] | None:
    return (archive,) if archive is not None else files


def _matches(path: str, patterns: Sequence[str] | None) -> bool:
    """Whether ``path`` is among the files ``patterns`` select (as a pull selects them)."""
    if patterns is None:
        return True
    return bool(list(filter_repo_objects([path], allow_patterns=list(patterns))))


def _unpacked(
    store: ModelStore, hub: HubSource, commits: tuple[StoredCommit, ...]
) -> dict[Path, tuple[str, str] | None]:
    """What was unpacked from the target's archive (from every archive, for a whole repo),
    each with the (commit, zip) it came from; None when that zip is no longer stored."""
    if hub.archive is None and hub.patterns is not None:
        return {}
    origins = {
        store.unpacked_target(HubSource(hub.repo_id, archive=path), stored.commit): (
            stored.commit,
            path,
        )
        for stored in commits
        for path in stored.files
        if path.lower().endswith(".zip")
    }
    folder = store.unpacked_folder(hub.repo_id)
    found = sorted(p for p in folder.glob("*/*") if p.is_dir()) if folder.is_dir() else []
    if hub.archive is not None:
        found = [p for p in found if p == store.unpacked_target(hub, p.parent.name)]
    return {path: origins.get(path) for path in found}


def _size(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
