"""Installs on demand, the parts that need no pip: the model's moves through INSTALLING,
what a failed install says, and that nothing is installed unless ``install_engines`` is
on. The installs themselves run for real in tests/torchengines/test_on_demand_install.py."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path

import pytest

from bragi.backends.registry import BackendRegistry
from bragi.config import ModelConfig, Settings
from bragi.errors import ModelUnavailableError
from bragi.models.catalog import Catalog
from bragi.models.configure import build_manager
from bragi.models.installs import RETRY_AFTER_SECONDS, _why
from bragi.models.progress import InstallProgress
from bragi.models.resolve import plan_source
from bragi.models.served import ModelState, ServedModel
from fakes import FakeSttBackend, make_model_dir

# What pip 24 printed on this machine (its constraints file caps torch) and on one
# with no torch at all.
CONFLICT = """\
ERROR: Cannot install torch==2.13.0 because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested torch==2.13.0
    The user requested (constraint) torch<=2.14.1

To fix this you could try to:
1. loosen the range of package versions you've specified
ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/#dealing-with-dependency-conflicts
bragi: installing the torch-tts environment failed while installing torch: ... code 1"""
MISSING = """\
Looking in links: /tmp/empty
ERROR: Could not find a version that satisfies the requirement torch==2.13.0 (from versions: none)
ERROR: No matching distribution found for torch==2.13.0
bragi: installing the speechbrain environment failed while installing torch: ... code 1"""


class IsolatedFakeBackend(FakeSttBackend):
    """A fake STT backend that declares an engine environment, as torch backends do."""

    requirements = ("six==1.16.0",)
    environment = "fake-env"


def test_pip_says_why_an_install_failed() -> None:
    assert _why(deque(CONFLICT.splitlines())) == (
        "Cannot install torch==2.13.0 because these package versions have conflicting "
        "dependencies.; caused by: The user requested torch==2.13.0; The user requested "
        "(constraint) torch<=2.14.1; ResolutionImpossible: for help visit "
        "https://pip.pypa.io/en/latest/topics/dependency-resolution/"
        "#dealing-with-dependency-conflicts"
    )
    assert _why(deque(MISSING.splitlines())) == (
        "Could not find a version that satisfies the requirement torch==2.13.0 (from "
        "versions: none); No matching distribution found for torch==2.13.0"
    )
    assert _why(deque(["Killed"])) == "Killed"


def test_a_model_moves_through_installing(tmp_path: Path) -> None:
    backend = IsolatedFakeBackend()
    model_dir = make_model_dir(tmp_path, backend.name)
    source = plan_source(str(model_dir), None, Catalog.builtin())
    model = ServedModel("asr", ModelConfig(model=str(model_dir)), source)
    model.prepared(backend, model_dir, backend.options_model())  # type: ignore[arg-type]
    install = InstallProgress("fake-env")
    model.installing(install)
    assert model.state is ModelState.INSTALLING and model.install is install
    assert model.progress_text().startswith("installing the fake-env engine environment (")
    with pytest.raises(RuntimeError, match="no move from installing to loading"):
        model.loading()
    model.installed()
    assert model.state is ModelState.AVAILABLE and model.install is None
    model.installing(install)
    model.unavailable("installing the fake-env engine environment failed: no", "install failed")
    assert model.state is ModelState.FAILED and model.install is None
    assert model.failure == "install failed"
    with pytest.raises(RuntimeError, match="no move from failed to installing"):
        model.installing(install)


@pytest.mark.parametrize("install_engines", [False, True])
def test_nothing_is_installed_unless_asked(tmp_path: Path, install_engines: bool) -> None:
    backend = IsolatedFakeBackend()
    model_dir = make_model_dir(tmp_path / "models", backend.name)
    settings = Settings(
        models={"asr": ModelConfig(model=str(model_dir))},
        data_dir=tmp_path / "data",
        device="cpu",
        install_engines=install_engines,
    )
    manager = build_manager(settings, BackendRegistry([backend]))  # type: ignore[list-item]
    model = manager.get("asr")
    assert manager.installs.missing(model) == "fake-env"

    async def boot() -> ModelState:
        if install_engines:
            manager.installs.abort()  # on, but stopping: no install starts either
        await manager.start(reap_interval=0)
        await asyncio.sleep(0.05)
        state = model.state
        await manager.stop()
        return state

    assert asyncio.run(boot()) is ModelState.AVAILABLE
    assert not (tmp_path / "data" / "envs").exists()


def test_a_request_while_installing_is_told_to_come_back(tmp_path: Path) -> None:
    backend = IsolatedFakeBackend()
    model_dir = make_model_dir(tmp_path / "models", backend.name)
    settings = Settings(
        models={"asr": ModelConfig(model=str(model_dir))}, data_dir=tmp_path, device="cpu"
    )
    manager = build_manager(settings, BackendRegistry([backend]))  # type: ignore[list-item]
    model = manager.get("asr")
    model.installing(InstallProgress("fake-env"))
    with pytest.raises(ModelUnavailableError) as refused:
        manager.residency.check_serviceable(model)
    assert refused.value.code == "engine_installing"
    assert refused.value.retry_after == RETRY_AFTER_SECONDS
    assert "`asr`'s engine is being installed (installing the fake-env" in refused.value.message
