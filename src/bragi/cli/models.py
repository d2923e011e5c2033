"""Ollama-style model commands: ``bragi pull|list|show|rm|ps``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["register"]

_MB = 1024 * 1024


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    pull = commands.add_parser("pull", help="download a model (catalog name or hub repo id)")
    common(pull)
    pull.add_argument("name", help="catalog name (see `bragi show`), org/repo, or a directory")
    pull.add_argument("--revision", help="hub branch, tag or commit")
    pull.set_defaults(handler=_pull)
    listing = commands.add_parser("list", help="list downloaded models")
    common(listing)
    listing.set_defaults(handler=_list)
    show = commands.add_parser("show", help="describe a model; without NAME, the catalog")
    common(show)
    show.add_argument("name", nargs="?")
    show.set_defaults(handler=_show)
    remove = commands.add_parser(
        "rm", help="delete a downloaded model's files (only what no other model uses)"
    )
    common(remove)
    remove.add_argument("name", help="catalog name, or org/repo for a whole hub repo")
    remove.add_argument(
        "--dry-run", action="store_true", help="say what would be deleted, delete nothing"
    )
    remove.add_argument(
        "--force", action="store_true", help="delete files a configured model uses, too"
    )
    remove.set_defaults(handler=_remove)
    ps = commands.add_parser("ps", help="models loaded in the running server")
    ps.add_argument(
        "--url",
        default=os.environ.get("BRAGI_URL", "http://127.0.0.1:8000"),
        help="server URL ($BRAGI_URL)",
    )
    ps.add_argument(
        "--api-key", default=os.environ.get("BRAGI_API_KEY"), help="an admin key ($BRAGI_API_KEY)"
    )
    ps.set_defaults(handler=_ps)


class _ProgressBar:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, progress: Any) -> None:
        now = time.monotonic()
        done = progress.bytes_done >= progress.bytes_total
        if now - self._last < 0.1 and not done:
            return
        self._last = now
        fraction = progress.fraction
        bar = "█" * int(30 * fraction) + "·" * (30 - int(30 * fraction))
        sys.stderr.write(
            f"\r{bar} {100 * fraction:5.1f}%  {progress.bytes_done / _MB:8.1f}/"
            f"{progress.bytes_total / _MB:.1f} MB  {progress.filename[-40:]:<40}"
        )
        sys.stderr.flush()


def _store_and_catalog(args: argparse.Namespace) -> tuple[Any, Any]:
    from bragi.cli.common import settings_from_args
    from bragi.models.catalog import Catalog
    from bragi.models.store import ModelStore

    settings = settings_from_args(args)
    return ModelStore(settings.models_dir), Catalog.builtin()


def _pull(args: argparse.Namespace) -> int:
    from bragi.backends.registry import BackendRegistry
    from bragi.models.companions import catalog_companions
    from bragi.models.resolve import fetch_source, plan_source

    store, catalog = _store_and_catalog(args)
    source = plan_source(args.name, args.revision, catalog)
    also = "".join(f" and {hub.repo_id}" for _option, hub in source.companions)
    print(f"pulling {args.name} from {source.origin}{also}", file=sys.stderr)
    if source.catalog is not None and source.catalog.non_commercial:
        print(_non_commercial(source.catalog), file=sys.stderr)
    path = fetch_source(source, store, _ProgressBar())
    sys.stderr.write("\n")
    # what the model's options name beside it (a diarizer's embedding model) comes too
    for field, companion in catalog_companions(source, BackendRegistry.from_entry_points()).items():
        print(
            f"pulling its {field} model {companion.reference} from {companion.origin}",
            file=sys.stderr,
        )
        fetch_source(companion, store, _ProgressBar())
        sys.stderr.write("\n")
    print(path)
    return 0


def _non_commercial(entry: Any) -> str:
    return f"note: the weights of {entry.name} are licensed {entry.license}: not for commercial use"


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _list(args: argparse.Namespace) -> int:
    from bragi.backends.registry import BackendRegistry
    from bragi.models.on_disk import downloaded_models

    store, catalog = _store_and_catalog(args)
    print(f"{'NAME':<44} {'BACKEND':<16} {'SIZE':>10}  SOURCE")
    for model in downloaded_models(store, BackendRegistry.from_entry_points(), catalog):
        backend = ",".join(model.backends) or "?"
        print(f"{model.name:<44} {backend:<16} {model.size_bytes / _MB:>7.1f} MB  {model.source}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from bragi.models.resolve import local_copy, plan_source

    store, catalog = _store_and_catalog(args)
    if args.name is None:
        print(f"{'NAME':<30} {'KIND':<11} {'BACKEND':<18} {'SIZE':>8}  DESCRIPTION")
        for e in catalog.entries():
            marker = "[non-commercial] " if e.non_commercial else ""
            print(
                f"{e.name:<30} {e.kind.value:<11} {e.backend:<18} {e.size_mb:>5.0f} MB  "
                f"{marker}{e.description}"
            )
        return 0
    source = plan_source(args.name, None, catalog)
    entry = source.catalog
    on_disk = local_copy(source, store)
    info: dict[str, Any] = {"name": args.name, "source": source.origin}
    if entry is not None:
        info |= {
            "kind": entry.kind.value,
            "backend": entry.backend,
            "description": entry.description,
            "repo": entry.repo,
            "files": list(entry.files or ()),
            "languages": list(entry.languages),
            "license": entry.license,
            "non_commercial": entry.non_commercial,
            "companions": [
                {"repo": c.repo, "files": list(c.files or ()), "option": c.option}
                for c in entry.companions
            ],
            "download_mb": entry.size_mb,
        }
        if entry.options:
            info["options"] = entry.options
        if entry.non_commercial:
            print(_non_commercial(entry), file=sys.stderr)
    info["downloaded"] = str(on_disk) if on_disk else False
    print(json.dumps(info, indent=2))
    return 0


def _remove(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from bragi.cli.common import settings_from_args
    from bragi.errors import ConflictError
    from bragi.models.removal import configured_sources, plan_removal, remove

    store, catalog = _store_and_catalog(args)
    configured = configured_sources(settings_from_args(args), catalog)
    removal = plan_removal(args.name, store, catalog, configured, force=args.force)
    if removal.users and not args.force:
        raise ConflictError(
            f"{args.name} is in use: configured model {', '.join(removal.users)} uses its "
            "files; take it out of the configuration first, or delete anyway with --force"
        )
    if not args.dry_run:
        removal = replace(removal, freed_bytes=remove(removal, store))
        if removal.users:
            print(f"bragi: deleted files {', '.join(removal.users)} uses", file=sys.stderr)
    print(removal.summary(done=not args.dry_run))
    for line in removal.lines():
        print(line)
    if removal.deleted and not args.dry_run:
        for note in _companion_notes(args.name, catalog, store):
            print(note)
    return 0


def _companion_notes(name: str, catalog: Any, store: Any) -> list[str]:
    """Companion models (a diarizer's embedding model) stay when their model goes: other
    models may use them."""
    from bragi.backends.registry import BackendRegistry
    from bragi.errors import BragiError
    from bragi.models.companions import catalog_companions
    from bragi.models.resolve import local_copy, plan_source

    try:
        source = plan_source(name, None, catalog)
        companions = catalog_companions(source, BackendRegistry.from_entry_points())
    except BragiError:  # a backend this install does not know
        companions = {}
    return [
        f"kept its {field} model {companion.reference} "
        f"(`bragi rm {companion.reference}` if nothing else uses it)"
        for field, companion in companions.items()
        if local_copy(companion, store) is not None
    ]


def _ps(args: argparse.Namespace) -> int:
    import httpx

    from bragi.errors import BragiError

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    try:
        response = httpx.get(f"{args.url.rstrip('/')}/admin/models", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise BragiError(f"cannot reach the server at {args.url}: {exc}") from None
    if response.status_code != 200:
        message = response.json().get("error", {}).get("message", response.text)
        raise BragiError(f"{args.url}: {response.status_code}: {message}")
    print(f"{'MODEL':<24} {'BACKEND':<16} {'STATE':<11} {'MEMORY':>9} {'IN USE':>6}  UNTIL UNLOAD")
    for m in response.json()["data"]:
        memory = f"{m['memory_bytes'] / _MB:.0f} MB" if m.get("memory_bytes") else "-"
        until = m.get("unload_in")
        when = (
            "never"
            if until is None and m["state"] == "loaded"
            else ("-" if until is None else f"{until:.0f} s")
        )
        print(
            f"{m['id']:<24} {m.get('backend') or '?':<16} {m['state']:<11} {memory:>9} "
            f"{m.get('in_use', 0):>6}  {when}"
        )
        if m.get("progress"):  # downloading, or its engine being installed
            print(f"{'':<24} {m['progress']}")
        elif m["state"] == "failed" and m.get("error"):
            print(f"{'':<24} {m['error']}")
    return 0
