"""Engine environments: one virtualenv per torch engine, under ``<data_dir>/envs/<name>``.

``install`` creates the venv with the server's Python, installs the torch packages
among the backend's ``requirements`` from the device's torch index, then the rest of
the requirements with the few libraries Bragi's worker imports (:data:`WORKER_CORE`,
at the versions the server's Bragi asks for), then Bragi itself without its
dependencies (the same source tree, editable, when the server's Bragi is an editable
install). pip's own output is streamed. ``bragi-env.json`` records what was installed;
an environment without it is incomplete and is not used.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, distribution, requires
from pathlib import Path
from urllib.parse import unquote, urlparse

from bragi import __version__
from bragi.backends.protocol import Backend
from bragi.errors import BackendUnavailableError, ConfigError, ConflictError, NotFoundError
from bragi.runners.envswap import exclusive, in_use, staging_for, swap_in

__all__ = [
    "COPY_INSTALLED",
    "MANIFEST_NAME",
    "TORCH_INDEXES",
    "WORKER_CORE",
    "EngineEnvs",
    "EnvManifest",
    "bragi_requirement",
    "environment_of",
    "project_name",
    "torch_index_for",
]

MANIFEST_NAME = "bragi-env.json"
#: ``bragi=`` value meaning "copy this installation's package and metadata" (no pip).
COPY_INSTALLED: list[str] = []
#: What the worker imports besides the engine: ``bragi.backends.protocol`` needs numpy
#: and pydantic, and importing ``bragi.audio`` loads av and soxr.
WORKER_CORE = ("numpy", "pydantic", "av", "soxr")
TORCH_PACKAGES = frozenset({"torch", "torchaudio", "torchvision"})
#: Where torch comes from, by device (``BRAGI_TORCH_INDEX`` overrides; ``pypi`` means
#: pip's configured index: PyPI's Linux torch wheels are the CUDA builds).
TORCH_INDEXES: dict[str, str | None] = {"cpu": "https://download.pytorch.org/whl/cpu", "cuda": None}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PROJECT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
Output = Callable[[str], None]


def project_name(requirement: str) -> str:
    match = _PROJECT.match(requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def torch_index_for(device: str, override: str | None = None) -> str | None:
    """The index torch is installed from; None for pip's configured index."""
    chosen = override if override is not None else os.environ.get("BRAGI_TORCH_INDEX")
    if chosen is not None:
        return None if chosen.strip().lower() in {"", "pypi", "default"} else chosen
    return TORCH_INDEXES.get(device)


def environment_of(backend: Backend) -> str:
    """The environment a backend's engine runs from: its ``environment`` when backends
    whose pins agree share one, else the backend's own name."""
    return str(getattr(backend, "environment", None) or backend.name)


def bragi_requirement() -> list[str]:
    """pip arguments installing this Bragi: its source tree (editable when this one is),
    the file it was installed from, else ``bragi==<version>`` from the index. Empty when
    it came from a source that is gone (a container image, built from a tree that is not
    in it): then the installed package itself is copied (:data:`COPY_INSTALLED`)."""
    try:
        dist = distribution("bragi")
    except PackageNotFoundError:
        return [f"bragi=={__version__}"]
    text = dist.read_text("direct_url.json")
    if not text:
        return [f"bragi=={dist.version}"]
    origin = json.loads(text)
    url = str(origin.get("url", ""))
    if url.startswith("file://"):
        path = unquote(urlparse(url).path)
        if not Path(path).exists():
            return COPY_INSTALLED
        return ["-e", path] if origin.get("dir_info", {}).get("editable") else [path]
    return [f"bragi @ {url}"]


def _worker_core() -> list[str]:
    """WORKER_CORE with the version bounds the installed Bragi declares."""
    try:
        declared = requires("bragi") or []
    except PackageNotFoundError:
        declared = []
    pinned = {project_name(r): r for r in declared if "extra ==" not in r and "extra==" not in r}
    return [pinned.get(name, name).split(";")[0].strip() for name in WORKER_CORE]


def _python_in(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _busy(name: str) -> ConflictError:
    return ConflictError(
        f"the {name} environment is in use by a running worker (a server has a model loaded "
        "from it): unload that model or stop the server first"
    )


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed while counting
                total += os.lstat(os.path.join(root, name)).st_size
    return total


@dataclass(frozen=True, slots=True)
class EnvManifest:
    """What ``bragi backend install`` put in an environment."""

    name: str
    device: str
    created: str  # ISO 8601, UTC
    bragi_version: str
    bragi_source: list[str]  # the pip arguments that installed Bragi
    python_version: str
    requirements: list[str]
    torch_index: str | None
    packages: dict[str, str]  # every installed distribution: version
    size_bytes: int
    no_deps: list[str] = field(default_factory=list)  # installed without their dependencies


class EngineEnvs:
    """The engine environments under ``root`` (``<data_dir>/envs``)."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ConfigError(f"{name!r} is not a backend name")
        return self.root / name

    def python(self, name: str) -> Path:
        return _python_in(self.path(name))

    def manifest(self, name: str) -> EnvManifest | None:
        try:
            data = json.loads((self.path(name) / MANIFEST_NAME).read_text(encoding="utf-8"))
            return EnvManifest(**data)
        except (OSError, ValueError, TypeError):
            return None

    def installed(self) -> list[tuple[str, EnvManifest | None]]:
        """Every environment, with its manifest (None: incomplete or broken)."""
        if not self.root.is_dir():
            return []
        names = sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.match(p.name))
        return [(name, self.manifest(name)) for name in names]

    def require(self, name: str) -> Path:
        """The environment's interpreter; BackendUnavailableError with the install command."""
        if self.manifest(name) is None or not self.python(name).exists():
            raise BackendUnavailableError(
                f"the {name} engine runs in its own environment, which is not installed in "
                f"{self.root}: run `bragi backend install {name}`"
            )
        return self.python(name)

    def in_use(self, name: str) -> bool | None:
        """Whether a running worker uses the environment (None: this system cannot tell)."""
        path = self.path(name)
        return in_use(path) if path.is_dir() else False

    def remove(self, name: str) -> int:
        """Delete the environment, unless a running worker uses it; the bytes freed."""
        path = self.path(name)
        if not path.is_dir():
            raise NotFoundError(f"no environment named {name!r} in {self.root}")
        with exclusive(path) as free:
            if not free:
                raise _busy(name)
            trash = path.with_name(f".{name}.removed")
            shutil.rmtree(trash, ignore_errors=True)
            os.rename(path, trash)  # gone at once for a worker about to start
        freed = _size(trash)
        shutil.rmtree(trash, ignore_errors=True)
        return freed

    def install(
        self,
        name: str,
        requirements: Sequence[str],
        device: str,
        *,
        torch_index: str | None = None,
        bragi: Sequence[str] | None = None,
        python: str | None = None,
        output: Output = print,
        verify_imports: Sequence[str] = (),
        no_deps: Sequence[str] = (),
    ) -> EnvManifest:
        """(Re)create the environment ``name``; pip's output goes to ``output``.

        The new environment is built beside the old one, which keeps serving until the new
        one is complete; then they are swapped. ``verify_imports`` are modules imported in
        the new environment, in its place, before the old one is deleted: a broken install
        fails here (and the old one is put back), not at the first request. Refused while a
        running worker uses the environment. ``no_deps`` are installed after the
        requirements, without their declared dependencies (``requirements`` then lists
        what they need).
        """
        path = self.path(name)
        if self.in_use(name):
            raise _busy(name)
        source = list(bragi) if bragi is not None else bragi_requirement()
        index = torch_index_for(device, torch_index)
        staging = staging_for(path)
        try:
            python_cmd = [python or sys.executable, "-m", "venv", str(staging)]
            self._run(name, "creating the venv", python_cmd, output)
            pip = [str(_python_in(staging)), "-m", "pip", "install", "--no-input", "--no-compile"]
            torch = [r for r in requirements if project_name(r) in TORCH_PACKAGES]
            if torch:
                where = ["--index-url", index] if index else []
                self._run(name, "installing torch", [*pip, *where, *torch], output)
            self._run(
                name, "installing the requirements", [*pip, *requirements, *_worker_core()], output
            )
            if no_deps:
                step = "installing packages without their dependencies"
                self._run(name, step, [*pip, "--no-deps", *no_deps], output)
            if source:
                self._run(name, "installing Bragi", [*pip, "--no-deps", *source], output)
            else:
                self._copy_installed_bragi(staging, output)
            if device == "cpu":
                self._cpu_torchaudio(staging, output)
            manifest = EnvManifest(
                name=name,
                device=device,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                bragi_version=__version__,
                bragi_source=source,
                python_version=self._python_version(staging),
                requirements=list(requirements),
                torch_index=index if torch else None,
                packages=self._packages(staging),
                size_bytes=_size(staging),
                no_deps=list(no_deps),
            )
            text = json.dumps(asdict(manifest), indent=2) + "\n"
            (staging / MANIFEST_NAME).write_text(text, encoding="utf-8")

            def verify() -> None:  # in its place: a venv names the folder it lives in
                if verify_imports:
                    check = "; ".join(f"import {module}" for module in verify_imports)
                    command = [str(self.python(name)), "-c", check]
                    self._run(name, "checking that the engine imports", command, output)

            with exclusive(path) as free:
                if not free:  # a worker started while this was being built
                    raise _busy(name)
                if path.exists():
                    output(f"replacing the old {name} environment")
                swap_in(staging, path, verify)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already after the swap
        return manifest

    def _run(self, name: str, step: str, command: list[str], output: Output) -> None:
        output("$ " + " ".join(command))
        # No bytecode while building: it would name the folder it was built in, not the
        # one it is swapped into (the engine's modules compile on their first import).
        quiet = os.environ | {"PYTHONDONTWRITEBYTECODE": "1"}
        try:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=quiet,
            )
        except OSError as exc:
            raise BackendUnavailableError(
                f"installing the {name} environment failed while {step}: "
                f"cannot run {command[0]}: {exc.strerror or exc}"
            ) from None
        with process:
            assert process.stdout is not None
            for raw in process.stdout:
                output(raw.decode(errors="replace").rstrip())
        if process.returncode != 0:
            raise BackendUnavailableError(
                f"installing the {name} environment failed while {step}: "
                f"{Path(command[0]).name} exited with code {process.returncode} (output above)"
            )

    def _copy_installed_bragi(self, venv: Path, output: Output) -> None:
        """Put this installation's ``bragi`` package and its metadata (entry points
        included, so the worker finds the backends) into the environment, as pip would."""
        dist = distribution("bragi")
        package = Path(__file__).resolve().parents[1]  # the installed ``bragi`` directory
        probe = "import sysconfig; print(sysconfig.get_path('purelib'))"
        site = Path(
            subprocess.run(
                [str(_python_in(venv)), "-c", probe], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        output(f"copying Bragi {dist.version} from {package} (the source it came from is gone)")
        shutil.copytree(package, site / "bragi", ignore=shutil.ignore_patterns("__pycache__"))
        info = site / f"bragi-{dist.version}.dist-info"
        info.mkdir()
        for member in ("METADATA", "entry_points.txt", "top_level.txt"):
            text = dist.read_text(member)
            if text is not None:
                (info / member).write_text(text, encoding="utf-8")
        (info / "INSTALLER").write_text("bragi backend install\n", encoding="utf-8")

    def _cpu_torchaudio(self, venv: Path, output: Output) -> None:
        """Make a CUDA build of torchaudio importable beside a CPU torch.

        PyPI's Linux torchaudio is built for CUDA; beside a CPU torch (from a local wheel,
        or ``--torch-index pypi`` on a CPU machine) its native library cannot load and
        ``import torchaudio`` fails. torchaudio works without that library when it is
        absent (its transforms and resampling are plain torch), so it is removed.
        """
        probe = (
            "import importlib.util, pathlib; spec = importlib.util.find_spec('torchaudio'); "
            "print(pathlib.Path(spec.origin).parent if spec and spec.origin else '')"
        )
        python = str(_python_in(venv))
        where = subprocess.run([python, "-c", probe], capture_output=True, text=True)
        if where.returncode != 0 or not where.stdout.strip():
            return  # no torchaudio here
        tried = subprocess.run([python, "-c", "import torchaudio"], capture_output=True, text=True)
        if tried.returncode == 0 or "cuda" not in tried.stderr.lower():
            return
        native = sorted((Path(where.stdout.strip()) / "lib").glob("*.so"))
        for library in native:
            library.unlink()
        output(
            "torchaudio here is a CUDA build and torch a CPU one: removed torchaudio's native "
            f"libraries ({', '.join(p.name for p in native)}); its Python parts work without them"
        )

    def _python_version(self, venv: Path) -> str:
        command = [
            str(_python_in(venv)),
            "-c",
            "import platform; print(platform.python_version())",
        ]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()

    def _packages(self, venv: Path) -> dict[str, str]:
        command = [str(_python_in(venv)), "-m", "pip", "list", "--format=json"]
        listed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        return {item["name"]: item["version"] for item in json.loads(listed)}
