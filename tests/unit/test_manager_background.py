"""The manager's background work: downloads retried when that may help and not when
it cannot, failures logged and contained to their model, keep-alive surviving an engine
that fails to close, files that vanish fetched again, and a stop that leaves no
download or engine running.

Models come from the stand-in hub (:mod:`hubstub`) through the real store; engines are
the named fakes. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bragi.backends.protocol import ModelKind
from bragi.backends.registry import BackendRegistry
from bragi.config import ModelConfig, Settings
from bragi.errors import HubUnreachableError, ModelUnavailableError
from bragi.models.configure import build_manager
from bragi.models.manager import ModelManager
from bragi.models.served import ModelState
from bragi.models.store import HubSource, ModelStore
from bragi.models.tasks import BackgroundTasks
from fakes import (
    BuggyDetectBackend,
    FakeBackend,
    FakeClock,
    FakeSttBackend,
    SlowClosingBackend,
    make_model_dir,
)
from hubstub import HubStub

T = TypeVar("T")
STT = ModelKind.STT


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(asyncio.wait_for(test(), 60))


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Let the loop run until ``condition`` holds; bounded."""
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def hub_repo(stub: HubStub, tmp_path: Path, repo_id: str, backend: str) -> None:
    """A repo on the stand-in hub holding a model directory for the fake ``backend``."""
    folder = make_model_dir(tmp_path / "repos", backend, repo_id.replace("/", "--"))
    (folder / "README.md").write_text(f"# {repo_id}\n")
    stub.add_repo(repo_id, folder)


def hub_manager(
    tmp_path: Path,
    backends: list[FakeBackend],
    models: dict[str, dict[str, Any]],
    **settings: Any,
) -> tuple[ModelManager, FakeClock]:
    """A manager over hub models (``{alias: ModelConfig fields}``) with the real store."""
    configs = {alias: ModelConfig(**fields) for alias, fields in models.items()}
    values = {"device": "cpu", "data_dir": tmp_path / "data"} | settings
    clock = FakeClock()
    store = ModelStore(tmp_path / "models")
    registry = BackendRegistry(backends)
    manager = build_manager(Settings(models=configs, **values), registry, store=store, clock=clock)
    manager.downloads.retry_first_delay = 0.01
    return manager, clock


class FlakyStore(ModelStore):
    """A store (a named fake) whose hub is unreachable for the first ``failures`` pulls."""

    def __init__(self, root: Path, model_dir: Path, failures: int):
        super().__init__(root, offline=False)
        self.model_dir = model_dir
        self.failures = failures
        self.pulls = 0

    def local_path(self, source: HubSource) -> Path | None:
        return None

    def fetch(self, source: HubSource, progress: object = None) -> Path:
        self.pulls += 1
        if self.pulls <= self.failures:
            raise HubUnreachableError(f"cannot reach the hub for {source.repo_id}")
        return self.model_dir


def test_failed_downloads_are_retried_with_backoff(tmp_path: Path) -> None:
    model_dir = make_model_dir(tmp_path, "fake-stt", "m")
    store = FlakyStore(tmp_path / "models", model_dir, failures=2)
    settings = Settings(
        models={"m": ModelConfig(model="org/m", backend="fake-stt")},
        device="cpu",
        data_dir=tmp_path / "data",
    )

    async def scenario() -> tuple[list[str], int]:
        manager = build_manager(settings, BackendRegistry([FakeSttBackend()]), store=store)
        manager.downloads.retry_first_delay = 0.01
        model = manager.get("m")
        seen = []
        await manager.start(reap_interval=0)
        for _ in range(500):  # bounded: ~5 s at most
            seen.append(model.state.value)
            if model.state is ModelState.AVAILABLE:
                break
            await asyncio.sleep(0.01)
        await manager.stop()
        return seen, model.fetch_failures

    states, failures = asyncio.run(scenario())
    assert "failed" in states and states[-1] == "available"
    assert store.pulls == 3 and failures == 0


def test_a_plugin_that_crashes_while_preparing_fails_its_model_and_the_rest_still_prepare(
    hub_stub: HubStub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception (here a backend plugin's detect()) marks that model failed,
    with the traceback in the log; the models after it are still prepared."""
    hub_repo(hub_stub, tmp_path, "bragi-tests/buggy", "fake-buggy")
    hub_repo(hub_stub, tmp_path, "bragi-tests/plain", "fake-stt")
    models = {"a": {"model": "bragi-tests/buggy"}, "b": {"model": "bragi-tests/plain"}}
    backends = [BuggyDetectBackend(), FakeSttBackend()]
    manager, _ = hub_manager(tmp_path, backends, models)

    async def scenario() -> None:
        await manager.start(reap_interval=0)
        a, b = manager.get("a"), manager.get("b")
        await until(lambda: b.state is ModelState.AVAILABLE, "b to be prepared")
        await until(lambda: a.state is not ModelState.DOWNLOADING, "a's preparation to end")
        await manager.stop()

    with caplog.at_level(logging.ERROR, logger="bragi"):
        run(scenario)
    a = manager.get("a")
    assert a.state is ModelState.FAILED
    assert a.error == "RuntimeError: fake-buggy: the plugin tripped over its own marker file"
    (record,) = [r for r in caplog.records if r.getMessage() == "preparing model a failed"]
    assert record.exc_info is not None


def test_a_missing_repo_is_not_retried_but_a_hub_error_is(
    hub_stub: HubStub, tmp_path: Path
) -> None:
    """A repo that does not exist stays missing: no retry. A download that failed on the
    hub's side may pass: it is tried again (and here passes)."""
    hub_repo(hub_stub, tmp_path, "bragi-tests/plain", "fake-stt")
    hub_stub.fail_once("bragi-tests/plain", "fake-stt.json", 403)
    models = {
        "typo": {"model": "bragi-tests/no-such-repo", "backend": "fake-stt"},
        "flaky": {"model": "bragi-tests/plain", "backend": "fake-stt"},
    }
    manager, _ = hub_manager(tmp_path, [FakeSttBackend()], models)

    async def scenario() -> None:
        await manager.start(reap_interval=0)
        flaky = manager.get("flaky")
        await until(lambda: flaky.state is ModelState.AVAILABLE, "flaky to be retried")
        await manager.stop()

    run(scenario)
    typo = manager.get("typo")
    assert typo.state is ModelState.FAILED and "was not found" in (typo.error or "")
    assert typo.fetch_failures == 0, "a missing repo is no transient failure"
    assert len(hub_stub.seen("GET", "/api/models/bragi-tests/no-such-repo")) == 1
    assert len(hub_stub.content_gets("fake-stt.json")) == 2


def test_keep_alive_survives_an_engine_that_fails_to_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing `a` raises: `a` is unloaded all the same, `b` is reaped in the same round,
    and the reaper goes on reaping."""
    backend = SlowClosingBackend(close_error="CUDA driver error while freeing")
    backend.close_gate.set()
    models = {
        alias: {"model": str(make_model_dir(tmp_path, backend.name, alias)), "keep_alive": 60}
        for alias in ("a", "b")
    }
    manager, clock = hub_manager(tmp_path, [backend], models)

    async def use(alias: str) -> None:
        async with await manager.acquire(alias, STT):
            pass

    async def scenario() -> None:
        await use("a")
        await use("b")
        await manager.start(reap_interval=0.005)
        clock.advance(61)
        await until(lambda: not any(m.engine for m in manager.models()), "both reaped")
        await use("a")
        clock.advance(61)
        await until(lambda: manager.get("a").engine is None, "a reaped again")
        await manager.stop()

    with caplog.at_level(logging.ERROR, logger="bragi"):
        run(scenario)
    closing_errors = [r for r in caplog.records if r.getMessage() == "closing a failed"]
    assert len(closing_errors) == 2 and all(r.exc_info for r in closing_errors)
    assert backend.events.count(("closed", 0)) == 1 and backend.resident == 0


def test_a_failing_background_task_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> None:
        raise ValueError("a bug in background work")

    async def scenario() -> None:
        task = BackgroundTasks().spawn(broken(), "broken work")
        await asyncio.wait([task])
        await asyncio.sleep(0)  # the done-callback runs

    with caplog.at_level(logging.ERROR, logger="bragi"):
        run(scenario)
    (record,) = caplog.records
    assert record.getMessage() == "background task 'broken work' failed"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


def test_a_model_whose_files_vanished_is_fetched_again(hub_stub: HubStub, tmp_path: Path) -> None:
    """Its directory deleted under it (by hand, by `bragi rm`), a model goes back to
    downloading on its next load instead of failing to load forever."""
    hub_repo(hub_stub, tmp_path, "bragi-tests/plain", "fake-stt")
    stt = FakeSttBackend()
    manager, _ = hub_manager(
        tmp_path, [stt], {"m": {"model": "bragi-tests/plain", "backend": "fake-stt"}}
    )
    model = manager.get("m")

    async def scenario() -> None:
        await manager.start(reap_interval=0)
        await until(lambda: model.state is ModelState.AVAILABLE, "the first download")
        async with await manager.acquire("m", STT):
            pass
        assert await manager.unload("m")
        assert model.model_dir is not None
        shutil.rmtree(model.model_dir)
        with pytest.raises(ModelUnavailableError, match="files are gone"):
            await manager.acquire("m", STT)
        await until(lambda: model.state is ModelState.AVAILABLE, "the files to come back")
        async with await manager.acquire("m", STT):
            pass
        await manager.stop()

    run(scenario)
    assert model.model_dir is not None and (model.model_dir / "fake-stt.json").is_file()
    assert stt.loads == 2


def test_stop_aborts_a_download_in_flight(hub_stub: HubStub, tmp_path: Path) -> None:
    """stop() returns without waiting for a slow pull, and the pull stops at its next
    progress report instead of running on in the background."""
    folder = make_model_dir(tmp_path / "repos", "fake-stt", "big")
    (folder / "weights.bin").write_bytes(bytes(40 * 1024 * 1024))  # 40 MB
    hub_stub.add_repo("bragi-tests/big", folder)
    hub_stub.throttle("bragi-tests/big", "weights.bin", 8 * 1024 * 1024)  # 5 s in all
    manager, _ = hub_manager(
        tmp_path, [FakeSttBackend()], {"m": {"model": "bragi-tests/big", "backend": "fake-stt"}}
    )
    model = manager.get("m")

    async def scenario() -> None:
        await manager.start(reap_interval=0)
        await until(lambda: (model.progress and model.progress.bytes_done) or 0, "progress")
        await asyncio.wait_for(manager.stop(), 3)

    run(scenario)
    assert model.state is not ModelState.AVAILABLE
    downloads = [t for t in threading.enumerate() if t.name == "bragi-download"]
    for thread in downloads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in downloads), "the pull went on"
    assert manager.store.local_path(HubSource("bragi-tests/big")) is None
