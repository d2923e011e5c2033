"""Engine environments for the torch engines, made for real with ``bragi backend install``.

Each environment is installed once per session (torch from pip's configured index: on
the project's machines that is the local CPU wheel of torch 2.13.0). Set
``BRAGI_TEST_ENVS`` to a directory to keep the environments between runs while working
on an engine: one is reused while its manifest matches the backend's requirements and
this source tree, and reinstalled otherwise.

Nothing here imports torch: tiny checkpoints are written by scripts that run with the
environment's interpreter (:func:`run_in_env`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bragi.backends.protocol import IsolatedBackend
from bragi.backends.registry import BackendRegistry
from bragi.runners import EngineEnvs
from bragi.runners.envs import bragi_requirement, environment_of

#: pip's configured index unless told otherwise (the PyTorch CPU index is unreachable here).
TORCH_INDEX = os.environ.get("BRAGI_TEST_TORCH_INDEX", "pypi")
INSTALL_TIMEOUT = 900.0


@dataclass(frozen=True)
class EngineEnv:
    name: str
    data_dir: Path  # the data dir whose envs/<name> holds the environment
    python: Path


def _current(envs: EngineEnvs, backend: IsolatedBackend, name: str) -> bool:
    manifest = envs.manifest(name)
    return (
        manifest is not None
        and manifest.requirements == list(backend.requirements)
        and manifest.no_deps == list(getattr(backend, "no_deps", ()))
        and manifest.bragi_source == bragi_requirement()
        and envs.python(name).exists()
    )


def install_env(envs: EngineEnvs, data_dir: Path, backend_name: str) -> EngineEnv:
    """The backend's environment in ``data_dir``, installed unless a current one is there
    (backends that share an environment share it here too)."""
    backend = BackendRegistry.from_entry_points().get(backend_name)
    assert isinstance(backend, IsolatedBackend), f"{backend_name} runs in the server"
    name = environment_of(backend)
    if not _current(envs, backend, name):
        log = data_dir / f"install-{name}.log"
        command = [sys.executable, "-m", "bragi", "backend", "install", backend_name]
        command += ["--data-dir", str(data_dir), "--device", "cpu", "--torch-index", TORCH_INDEX]
        with log.open("w") as out:
            done = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT
            )
        if done.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            pytest.fail(f"bragi backend install {backend_name} failed:\n{tail}")
    return EngineEnv(name, data_dir, envs.python(name))


def run_in_env(env: EngineEnv, script: str, *args: str, timeout: float = 300.0) -> str:
    """Run a Python script with the environment's interpreter; its stdout."""
    done = subprocess.run(
        [str(env.python), "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        pytest.fail(f"the script failed in the {env.name} environment:\n{done.stderr[-4000:]}")
    return done.stdout


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def mapped_files(pid: int) -> str:
    """What a process has mapped: its shared libraries among them."""
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.fixture(scope="session")
def engine_env(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], EngineEnv]:
    """``engine_env("speechbrain")``: the backend's environment, installed on first use,
    once per session whichever tests ask (kept between runs in ``$BRAGI_TEST_ENVS``)."""
    kept = os.environ.get("BRAGI_TEST_ENVS")
    data_dir = Path(kept) if kept else tmp_path_factory.mktemp("engine-envs")
    data_dir.mkdir(parents=True, exist_ok=True)
    envs = EngineEnvs(data_dir / "envs")
    ready: dict[str, EngineEnv] = {}

    def get(name: str) -> EngineEnv:
        if name not in ready:
            ready[name] = install_env(envs, data_dir, name)
        return ready[name]

    return get
