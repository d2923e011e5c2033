"""Fixtures for the runner tests: scripted engines started in real worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bragi.backends.protocol import Backend
from bragi.runners import RunnerConfig, create_engine
from childfakes import STT, Script, ScriptOptions
from fakes import make_model_dir
from runnerkit import STEP_TIMEOUT, StartEngine


@pytest.fixture
def script(tmp_path: Path) -> Script:
    workdir = tmp_path / "work"
    workdir.mkdir()
    return Script(workdir)


@pytest.fixture
def start_engine(tmp_path: Path, script: Script) -> Iterator[StartEngine]:
    """``start_engine(backend=STT, runner="worker", timeout=..., **script_options)``;
    every engine started is closed at teardown."""
    engines: list[Any] = []

    def start(
        backend: Backend = STT,
        *,
        runner: str = "worker",
        timeout: float = STEP_TIMEOUT,
        **options: Any,
    ) -> Any:
        model_dir = make_model_dir(tmp_path / "models", backend.name)
        config = RunnerConfig(
            runner=runner,  # type: ignore[arg-type]
            label=backend.name,
            timeout=timeout,
            load_timeout=120.0,
            envs_dir=tmp_path / "envs",
        )
        opts = ScriptOptions(workdir=str(script.dir), **options)
        engine = create_engine(backend, model_dir, "cpu", opts, config)
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        engine.close()
