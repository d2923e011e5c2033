"""The model manager under concurrency: unloading, eviction, reaping and loading of one
model never overlap, and a leased engine is never closed.

The races of the review of 2026-12-04 (H3), each held open with the fakes' gates: a
reap that closes an engine a request has just leased, two first loads that together
pass ``max_loaded_models``, a second copy loading while the first still closes. Then a
storm of requests across three models, checking the same books at every step.
Pure asyncio with a :class:`FakeClock`; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bragi.backends.protocol import ModelKind
from bragi.backends.registry import BackendRegistry
from bragi.config import ModelConfig, Settings
from bragi.errors import ModelUnavailableError
from bragi.models.configure import build_manager
from bragi.models.manager import Lease, ModelManager
from bragi.models.served import ModelState
from fakes import (
    FakeBackend,
    FakeClock,
    FakeSttEngine,
    SlowClosingBackend,
    SlowLoadingBackend,
    make_model_dir,
)

STT = ModelKind.STT
T = TypeVar("T")


def run(test: Callable[[], Coroutine[Any, Any, T]], backend: FakeBackend) -> T:
    try:
        return asyncio.run(asyncio.wait_for(test(), 30))
    finally:
        backend.release()


def manager_for(
    tmp_path: Path, backend: FakeBackend, aliases: list[str], **settings: Any
) -> tuple[ModelManager, FakeClock]:
    configs = {
        alias: ModelConfig(model=str(make_model_dir(tmp_path, backend.name, alias)))
        for alias in aliases
    }
    values = {"device": "cpu", "data_dir": tmp_path / "data", "keep_alive": 300} | settings
    clock = FakeClock()
    registry = BackendRegistry([backend])
    return build_manager(Settings(models=configs, **values), registry, clock=clock), clock


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the loop run (and worker threads finish) until ``condition`` holds; bounded."""
    for _ in range(5_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")


async def use(manager: ModelManager, alias: str) -> None:
    async with await manager.acquire(alias, STT):
        pass


def test_the_reaper_never_closes_an_engine_leased_while_it_works(tmp_path: Path) -> None:
    """(a) reap() unloads `a` (its close held open); meanwhile a request leases `b`,
    which has expired too. `b` must stay loaded, its engine open under the lease."""
    backend = SlowClosingBackend()
    manager, clock = manager_for(tmp_path, backend, ["a", "b"])

    async def scenario() -> None:
        backend.close_gate.set()
        await use(manager, "a")
        await use(manager, "b")
        backend.close_gate.clear()
        clock.advance(301)
        reaper = asyncio.ensure_future(manager.reap())
        await until(backend.closing.is_set, "the reaper to start closing a")
        lease = await asyncio.wait_for(manager.acquire("b", STT), 5)
        backend.close_gate.set()
        assert await reaper == ["a"]
        assert lease.model.state is ModelState.LOADED
        assert isinstance(lease.engine, FakeSttEngine) and not lease.engine.closed
        assert manager.get("a").state is ModelState.AVAILABLE
        await lease.release()

    run(scenario, backend)


def test_concurrent_first_loads_never_pass_max_loaded_models(tmp_path: Path) -> None:
    """(b) With max_loaded_models=1, two first requests for two models: one loads, the
    other is told the loaded models are busy (a model loading counts as loaded)."""
    slow = SlowLoadingBackend()
    manager, _ = manager_for(tmp_path, slow, ["a", "b"], max_loaded_models=1)

    async def scenario() -> None:
        first = asyncio.ensure_future(manager.acquire("a", STT))
        await until(slow.load_started.is_set, "a's load to start")
        second = asyncio.ensure_future(manager.acquire("b", STT))
        await until(second.done, "b to be refused while a loads")
        with pytest.raises(ModelUnavailableError, match="busy"):
            second.result()
        slow.load_gate.set()
        lease = await first
        assert [m.alias for m in manager.models() if m.engine is not None] == ["a"]
        assert manager.get("b").state is ModelState.AVAILABLE, "b may be tried again"
        await lease.release()
        await use(manager, "b")  # a, idle now, makes room
        assert [m.alias for m in manager.models() if m.engine is not None] == ["b"]
        assert slow.loads == 2

    run(scenario, slow)


def test_a_request_during_an_unload_waits_for_the_close_before_loading_again(
    tmp_path: Path,
) -> None:
    """(c) An unload is closing `a`'s engine when a request for `a` arrives: the request
    waits, and the new copy loads only after the old one is closed."""
    backend = SlowClosingBackend()
    manager, _ = manager_for(tmp_path, backend, ["a"])

    async def scenario() -> None:
        await use(manager, "a")
        unloading = asyncio.ensure_future(manager.unload("a"))
        await until(backend.closing.is_set, "the close to start")
        assert manager.get("a").state is ModelState.UNLOADING
        request = asyncio.ensure_future(manager.acquire("a", STT))
        await asyncio.sleep(0.05)
        assert not request.done() and backend.loads == 1, "no second copy while closing"
        backend.close_gate.set()
        assert await unloading is True
        lease = await asyncio.wait_for(request, 5)
        await lease.release()
        assert backend.events == [("loaded", 0), ("closed", 0), ("loaded", 1)]

    run(scenario, backend)


def test_a_request_during_an_eviction_waits_and_the_limit_holds(tmp_path: Path) -> None:
    """`b` evicts the idle `a` (max_loaded_models=1, its close held open); a request for
    `a` meanwhile neither loads a second copy nor gets in before `b`."""
    backend = SlowClosingBackend()
    manager, clock = manager_for(tmp_path, backend, ["a", "b"], max_loaded_models=1)

    async def scenario() -> None:
        await use(manager, "a")
        clock.advance(1)
        for_b = asyncio.ensure_future(manager.acquire("b", STT))
        await until(backend.closing.is_set, "b to start evicting a")
        for_a = asyncio.ensure_future(manager.acquire("a", STT))
        await asyncio.sleep(0.05)
        assert not for_a.done() and backend.loads == 1
        backend.close_gate.set()
        lease_b = await asyncio.wait_for(for_b, 5)
        with pytest.raises(ModelUnavailableError, match="busy"):
            await asyncio.wait_for(for_a, 5)
        assert backend.most_resident == 1
        await lease_b.release()

    run(scenario, backend)


def test_keep_alive_zero_and_a_new_request_do_not_overlap(tmp_path: Path) -> None:
    """keep_alive 0 closes the engine when the last lease goes; a request arriving during
    that close waits for it, then loads a fresh engine."""
    backend = SlowClosingBackend()
    manager, _ = manager_for(tmp_path, backend, ["a"], keep_alive=0)

    async def scenario() -> None:
        backend.close_gate.set()
        lease = await manager.acquire("a", STT)
        backend.close_gate.clear()
        releasing = asyncio.ensure_future(lease.release())
        await until(backend.closing.is_set, "the close to start")
        request = asyncio.ensure_future(manager.acquire("a", STT))
        await asyncio.sleep(0.05)
        assert backend.loads == 1
        backend.close_gate.set()
        await releasing
        second = await asyncio.wait_for(request, 5)
        assert isinstance(second.engine, FakeSttEngine) and not second.engine.closed
        await second.release()
        assert backend.events == [("loaded", 0), ("closed", 0), ("loaded", 1), ("closed", 1)]

    run(scenario, backend)


def test_a_storm_of_requests_keeps_the_books(tmp_path: Path) -> None:
    """300 requests over three models with max_loaded_models=2, reaps and unloads thrown
    in: never more than two engines resident, and no leased engine ever closed."""
    backend = SlowClosingBackend()
    backend.close_gate.set()
    manager, clock = manager_for(
        tmp_path, backend, ["a", "b", "c"], max_loaded_models=2, max_concurrency=4, max_queue=300
    )
    chance = random.Random(19)
    outcomes = {"served": 0, "busy": 0}

    async def request(alias: str) -> None:
        await asyncio.sleep(chance.random() / 100)
        try:
            lease: Lease = await manager.acquire(alias, STT)
        except ModelUnavailableError:
            outcomes["busy"] += 1
            return
        try:
            for _ in range(chance.randrange(3)):
                await asyncio.sleep(0)
                assert isinstance(lease.engine, FakeSttEngine) and not lease.engine.closed
        finally:
            await lease.release()
        outcomes["served"] += 1

    async def disturb() -> None:
        for _ in range(30):
            await asyncio.sleep(chance.random() / 50)
            clock.advance(chance.choice([0, 400]))
            await manager.reap()
            await manager.unload(chance.choice("abc"))

    async def scenario() -> None:
        aliases = [chance.choice("abc") for _ in range(300)]
        await asyncio.gather(disturb(), *(request(alias) for alias in aliases))
        await manager.stop()

    run(scenario, backend)
    assert backend.most_resident <= 2
    assert backend.resident == 0, "stop() closed every engine"
    assert outcomes["served"] + outcomes["busy"] == 300 and outcomes["served"] > 100
    assert all(m.in_use == 0 and m.running == 0 for m in manager.models())


def test_a_request_cancelled_during_the_load_leaves_no_lease_behind(tmp_path: Path) -> None:
    """The client goes while the first load runs: the load still completes (the engine is
    tracked, not lost in a thread), and the cancelled request holds no lease or slot."""
    slow = SlowLoadingBackend()
    manager, _ = manager_for(tmp_path, slow, ["m"])

    async def scenario() -> None:
        request = asyncio.ensure_future(manager.acquire("m", STT))
        await until(slow.load_started.is_set, "the load to start")
        request.cancel()
        await asyncio.sleep(0.01)
        slow.load_gate.set()
        with pytest.raises(asyncio.CancelledError):
            await request
        model = manager.get("m")
        assert model.state is ModelState.LOADED and slow.loads == 1
        assert (model.in_use, model.running) == (0, 0)
        async with await manager.acquire("m", STT):  # the loaded engine serves the next one
            pass
        assert slow.loads == 1

    run(scenario, slow)
