"""Ollama-style model commands: ``bragi pull|list|show|rm|ps``."""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    remove = commands.add_parser("rm", help="delete a downloaded model")
    common(remove)
    remove.add_argument("name")
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
    from bragi.models.resolve import fetch_source, plan_source

    store, catalog = _store_and_catalog(args)
    source = plan_source(args.name, args.revision, catalog)
    also = "".join(f" and {hub.repo_id}" for _option, hub in source.companions)
    print(f"pulling {args.name} from {source.origin}{also}", file=sys.stderr)
    if source.catalog is not None and source.catalog.non_commercial:
        print(_non_commercial(source.catalog), file=sys.stderr)
    path = fetch_source(source, store, _ProgressBar())
    sys.stderr.write("\n")
    print(path)
    return 0


def _non_commercial(entry: Any) -> str:
    return f"note: the weights of {entry.name} are licensed {entry.license}: not for commercial use"


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _backend_of(path: Path) -> str:
    from bragi.backends.registry import BackendRegistry

    backend = BackendRegistry.from_entry_points().detect(path)
    return backend.name if backend else "?"


def _companions_of(stored: list[Any], catalog: Any) -> dict[str, set[str]]:
    """Main repo ─▶ the stored companion repos a catalog model of it needs (listed with it)."""
    repos = {model.repo_id for model in stored}
    found: dict[str, set[str]] = {}
    for entry in catalog.entries():
        if entry.repo in repos:
            for companion in entry.companions:
                if companion.repo in repos:
                    found.setdefault(entry.repo, set()).add(companion.repo)
    return found


def _list(args: argparse.Namespace) -> int:
    store, catalog = _store_and_catalog(args)
    rows = []
    packaged_root = store.root / "packaged"
    if packaged_root.is_dir():
        for path in sorted(p for p in packaged_root.iterdir() if p.is_dir() and p.name[0] != "."):
            rows.append((path.name.replace("--", ":"), _backend_of(path), _size(path), "pypi"))
    stored_repos = store.list()
    companions = _companions_of(stored_repos, catalog)
    folded = set().union(*companions.values())
    for stored in stored_repos:
        if stored.repo_id in folded:
            continue  # listed with the model that needs it
        # a repo of archives (Vosk zips) holds its models in what was unpacked from them
        found = {_backend_of(path) for path in (*stored.unpacked, stored.path)} - {"?"}
        backend = ",".join(sorted(found)) or "?"
        extra = [s for s in stored_repos if s.repo_id in companions.get(stored.repo_id, ())]
        name = stored.repo_id + "".join(f" + {s.repo_id}" for s in extra)
        size = stored.size_bytes + sum(s.size_bytes for s in extra)
        rows.append((name, backend, size, "hub"))
    print(f"{'NAME':<44} {'BACKEND':<16} {'SIZE':>10}  SOURCE")
    for name, backend, size, origin in rows:
        print(f"{name:<44} {backend:<16} {size / _MB:>7.1f} MB  {origin}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from bragi.models.resolve import local_copy, plan_source

    store, catalog = _store_and_catalog(args)
    if args.name is None:
        print(f"{'NAME':<30} {'KIND':<5} {'BACKEND':<15} {'SIZE':>8}  DESCRIPTION")
        for e in catalog.entries():
            marker = "[non-commercial] " if e.non_commercial else ""
            print(
                f"{e.name:<30} {e.kind.value:<5} {e.backend:<15} {e.size_mb:>5.0f} MB  "
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
        if entry.non_commercial:
            print(_non_commercial(entry), file=sys.stderr)
    info["downloaded"] = str(on_disk) if on_disk else False
    print(json.dumps(info, indent=2))
    return 0


def _remove(args: argparse.Namespace) -> int:
    from bragi.errors import NotFoundError
    from bragi.models.packaged import packaged_dir
    from bragi.models.resolve import plan_source, remove_companions

    store, catalog = _store_and_catalog(args)
    source = plan_source(args.name, None, catalog)
    freed = 0
    if source.catalog is not None:
        target = packaged_dir(store.root, source.catalog.name)
        if target.is_dir():
            freed += _size(target)
            shutil.rmtree(target)
    also = ""
    if source.hub is not None:
        freed += store.remove(source.hub)
        companions = remove_companions(source, store, catalog)
        freed += sum(companions.values())
        also = "".join(f" and {repo}" for repo in companions)
    if source.path is not None:
        raise NotFoundError(f"{args.name} is a local directory; Bragi does not delete those")
    if not freed:
        raise NotFoundError(f"{args.name} is not downloaded")
    print(f"deleted {args.name}{also} ({freed / _MB:.1f} MB)")
    return 0


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
