"""Fixtures for the torch engines' tests: their environments, installed for real."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bragi.runners import EngineEnvs
from torchenvs import EngineEnv, install_env


@pytest.fixture(scope="session")
def engine_env(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], EngineEnv]:
    """``engine_env("speechbrain")``: the backend's environment, installed on first use
    (kept between runs in ``$BRAGI_TEST_ENVS`` when set)."""
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
