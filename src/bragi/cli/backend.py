"""Engine environments: ``bragi backend install|list|remove``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bragi.backends.protocol import Backend
    from bragi.backends.registry import BackendRegistry

__all__ = ["register"]

_MB = 1024 * 1024


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    backend = commands.add_parser(
        "backend", help="environments of engines that run in their own process (torch engines)"
    )
    actions = backend.add_subparsers(dest="backend_command", metavar="ACTION", required=True)
    install = actions.add_parser("install", help="create (or recreate) an engine's environment")
    common(install)
    install.add_argument(
        "name", help="the backend, e.g. speechbrain, or a shared environment, e.g. torch-tts"
    )
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
    from bragi.runners.envs import environment_of

    settings, envs = _envs(args)
    registry = BackendRegistry.from_entry_points()
    backend = _isolated(registry, args.name)
    name = environment_of(backend)
    if not isinstance(backend, IsolatedBackend):
        raise ConfigError(
            f"the {backend.name} engine runs in the server and needs no environment of its own: "
            f"pip install 'bragi[{backend.extra}]'"
        )
    device = resolve_device(settings.device)
    _warn_if_blind(envs, name)
    sharing = sorted(b.name for b in registry if environment_of(b) == name and b.name != name)
    shared = f" (shared by {', '.join(sharing)})" if len(sharing) > 1 else ""
    _stderr(f"installing the {name} environment{shared} for {device} in {envs.path(name)}")
    manifest = envs.install(
        name,
        list(backend.requirements),
        device,
        torch_index=args.torch_index,
        bragi=_bragi_source(args.bragi),
        python=args.python,
        output=_stderr,
        verify_imports=tuple(getattr(backend, "verify_imports", ())),
        no_deps=tuple(getattr(backend, "no_deps", ())),
    )
    print(f"installed {name} ({manifest.size_bytes / _MB:.1f} MB, {device}){shared}")
    return 0


def _isolated(registry: BackendRegistry, name: str) -> Backend:
    """The backend ``name``, or the first backend of the environment named ``name``."""
    from bragi.runners.envs import environment_of

    if name not in registry:
        sharing = [b for b in registry if environment_of(b) == name]
        if sharing:
            return sharing[0]
    return registry.get(name)


def _bragi_source(spec: str | None) -> list[str] | None:
    from bragi.runners.envs import COPY_INSTALLED

    if spec is None:
        return None
    return COPY_INSTALLED if spec.strip() == "copy" else spec.split()


def _versions(manifest: Any) -> str:
    from bragi.runners.envs import project_name

    pinned = [r for r in manifest.requirements if "==" in r]  # the ones that matter
    wanted = [project_name(r) for r in [*pinned, *manifest.no_deps]] + ["bragi"]
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
    from bragi.backends.registry import BackendRegistry
    from bragi.runners.envs import environment_of

    _settings, envs = _envs(args)
    name = args.name
    registry = BackendRegistry.from_entry_points()
    if name in registry and not envs.path(name).is_dir():  # a backend of a shared environment
        name = environment_of(registry.get(name))
    _warn_if_blind(envs, name)
    freed = envs.remove(name)
    print(f"removed the {name} environment ({freed / _MB:.1f} MB)")
    return 0
