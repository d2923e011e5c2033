"""Engine environments: ``bragi backend install|list|remove``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["register"]

_MB = 1024 * 1024


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    backend = commands.add_parser(
        "backend", help="environments of engines that run in their own process (torch engines)"
    )
    actions = backend.add_subparsers(dest="backend_command", metavar="ACTION", required=True)
    install = actions.add_parser("install", help="create (or recreate) an engine's environment")
    common(install)
    install.add_argument("name", help="the backend, e.g. speechbrain")
    install.add_argument(
        "--torch-index",
        metavar="URL",
        help="where torch comes from: a pip index URL, or `pypi` for pip's configured index "
        "(default: $BRAGI_TORCH_INDEX, else the PyTorch CPU index for --device cpu and pip's "
        "index for cuda)",
    )
    install.add_argument(
        "--bragi",
        metavar="SPEC",
        help="how to install Bragi in it: pip arguments, or `copy` to copy this installation "
        "(default: the same source, wheel or version as this one; copy when that is gone)",
    )
    install.add_argument("--python", metavar="PATH", help="interpreter for the venv")
    install.set_defaults(handler=_install)
    listing = actions.add_parser("list", help="installed engine environments")
    common(listing)
    listing.set_defaults(handler=_list)
    remove = actions.add_parser("remove", help="delete an engine's environment")
    common(remove)
    remove.add_argument("name")
    remove.set_defaults(handler=_remove)


def _envs(args: argparse.Namespace) -> Any:
    from bragi.cli.common import settings_from_args
    from bragi.runners import EngineEnvs

    settings = settings_from_args(args)
    return settings, EngineEnvs(settings.data_dir / "envs")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _install(args: argparse.Namespace) -> int:
    from bragi.backends.protocol import IsolatedBackend
    from bragi.backends.registry import BackendRegistry
    from bragi.devices import resolve_device
    from bragi.errors import ConfigError

    settings, envs = _envs(args)
    backend = BackendRegistry.from_entry_points().get(args.name)
    if not isinstance(backend, IsolatedBackend):
        raise ConfigError(
            f"the {backend.name} engine runs in the server and needs no environment of its own: "
            f"pip install 'bragi[{backend.extra}]'"
        )
    device = resolve_device(settings.device)
    _warn_if_blind(envs, backend.name)
    _stderr(f"installing the {backend.name} environment for {device} in {envs.path(args.name)}")
    manifest = envs.install(
        backend.name,
        list(backend.requirements),
        device,
        torch_index=args.torch_index,
        bragi=_bragi_source(args.bragi),
        python=args.python,
        output=_stderr,
        verify_imports=tuple(getattr(backend, "verify_imports", ())),
    )
    print(f"installed {backend.name} ({manifest.size_bytes / _MB:.1f} MB, {device})")
    return 0


def _bragi_source(spec: str | None) -> list[str] | None:
    from bragi.runners.envs import COPY_INSTALLED

    if spec is None:
        return None
    return COPY_INSTALLED if spec.strip() == "copy" else spec.split()


def _versions(manifest: Any) -> str:
    from bragi.runners.envs import project_name

    wanted = [project_name(r) for r in manifest.requirements] + ["bragi"]
    by_project = {
        project_name(name): f"{name} {version}" for name, version in manifest.packages.items()
    }
    return ", ".join(by_project[name] for name in wanted if name in by_project)


def _list(args: argparse.Namespace) -> int:
    _settings, envs = _envs(args)
    print(f"{'NAME':<16} {'DEVICE':<6} {'SIZE':>10}  {'CREATED':<16}  PACKAGES")
    for name, manifest in envs.installed():
        if manifest is None:
            print(f"{name:<16} {'?':<6} {'?':>10}  {'incomplete':<16}  (`bragi backend remove`)")
            continue
        size = f"{manifest.size_bytes / _MB:.1f} MB"
        created = manifest.created[:16].replace("T", " ")
        print(f"{name:<16} {manifest.device:<6} {size:>10}  {created:<16}  {_versions(manifest)}")
    return 0


def _warn_if_blind(envs: Any, name: str) -> None:
    if envs.in_use(name) is None:
        _stderr(
            f"warning: this system cannot tell whether a running server uses the {name} "
            "environment (no flock): stop the servers that do first"
        )


def _remove(args: argparse.Namespace) -> int:
    _settings, envs = _envs(args)
    _warn_if_blind(envs, args.name)
    freed = envs.remove(args.name)
    print(f"removed the {args.name} environment ({freed / _MB:.1f} MB)")
    return 0
