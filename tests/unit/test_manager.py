"""The model manager's lifecycle with an injected clock: keep-alive, LRU eviction,
leases, one load for many first requests, back-pressure, failed loads.

Pure asyncio (``asyncio.run`` inside each test), no server, no sleeping: the clock is
a :class:`FakeClock` the test moves, and ``reap()`` is called by hand.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from bragi.backends.protocol import Engine, ModelKind
from bragi.backends.registry import BackendRegistry
from bragi.config import ModelConfig, Settings
from bragi.errors import (
    ConfigError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelUnavailableError,
    RateLimitError,
)
from bragi.models.configure import build_manager
from bragi.models.manager import LOAD_RETRY_SECONDS, Lease, ModelManager
from bragi.models.served import ModelState
from fakes import (
    FailingBackend,
    FakeBackend,
    FakeClock,
    FakeSttBackend,
    FakeSttEngine,
    FakeTtsBackend,
    SlowLoadingBackend,
    make_model_dir,
)

STT = ModelKind.STT
T = TypeVar("T")


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(test())


def manager_for(
    tmp_path: Path,
    models: dict[str, dict[str, Any]],
    backends: list[FakeBackend] | None = None,
    **settings: Any,
) -> tuple[ModelManager, FakeClock, FakeSttBackend]:
    """A manager over fake models: ``{alias: {"backend": name, **ModelConfig fields}}``
    (``backend`` defaults to ``fake-stt``)."""
    stt = FakeSttBackend()
    backends = [stt, *(backends or [])]
    configs = {}
    for alias, fields in models.items():
        fields = dict(fields)
        model_dir = make_model_dir(tmp_path, fields.pop("backend", "fake-stt"), alias)
        configs[alias] = ModelConfig(model=str(model_dir), **fields)
    values = {"device": "cpu", "data_dir": tmp_path / "data", "keep_alive": 300} | settings
    clock = FakeClock()
    manager = build_manager(
        Settings(models=configs, **values), BackendRegistry(backends), clock=clock
    )
    return manager, clock, stt


async def use(manager: ModelManager, alias: str) -> None:
    """One whole request: lease, then release."""
    async with await manager.acquire(alias, STT):
        pass


def engine_of(lease: Lease) -> FakeSttEngine:
    assert isinstance(lease.engine, FakeSttEngine)
    return lease.engine


# --- keep-alive -----------------------------------------------------------------------


def test_a_model_unloads_when_its_keep_alive_runs_out(tmp_path: Path) -> None:
    manager, clock, stt = manager_for(tmp_path, {"m": {"keep_alive": 60}})
    model = manager.get("m")

    async def scenario() -> None:
        assert model.state is ModelState.AVAILABLE
        await use(manager, "m")
        assert model.state is ModelState.LOADED
        (engine,) = stt.engines

        clock.advance(59)
        assert await manager.reap() == []
        assert model.state is ModelState.LOADED

        clock.advance(1)
        assert await manager.reap() == ["m"]
        assert model.state is ModelState.AVAILABLE
        assert model.engine is None
        assert isinstance(engine, FakeSttEngine) and engine.closed

        await use(manager, "m")  # a later request loads it again
        assert stt.loads == 2

    run(scenario)


def test_the_server_keep_alive_is_the_default(tmp_path: Path) -> None:
    manager, clock, _ = manager_for(tmp_path, {"m": {}}, keep_alive="5m")

    async def scenario() -> None:
        await use(manager, "m")
        clock.advance(299)
        assert await manager.reap() == []
        clock.advance(1)
        assert await manager.reap() == ["m"]

    run(scenario)


def test_keep_alive_minus_one_never_unloads(tmp_path: Path) -> None:
    manager, clock, stt = manager_for(tmp_path, {"m": {"keep_alive": -1}})

    async def scenario() -> None:
        await use(manager, "m")
        clock.advance(10 * 365 * 24 * 3600)
        assert await manager.reap() == []
        assert manager.get("m").state is ModelState.LOADED
        assert manager.get("m").unload_in(clock.now, 300) is None
        assert not any(engine.closed for engine in stt.engines)  # type: ignore[attr-defined]

    run(scenario)


def test_keep_alive_zero_unloads_after_each_request(tmp_path: Path) -> None:
    manager, _, stt = manager_for(tmp_path, {"m": {"keep_alive": 0}})
    model = manager.get("m")

    async def scenario() -> None:
        lease = await manager.acquire("m", STT)
        assert model.state is ModelState.LOADED  # loaded while the request runs
        await lease.release()
        assert model.state is ModelState.AVAILABLE
        assert engine_of(lease).closed
        await use(manager, "m")
        assert stt.loads == 2

    run(scenario)


def test_keep_alive_zero_closes_the_engine_of_a_cancelled_request(tmp_path: Path) -> None:
    """A request cancelled mid-way (its client left) releases its lease inside a cancelled
    scope; the unload that follows must still close the engine, not just forget it."""
    manager, _, _ = manager_for(tmp_path, {"m": {"keep_alive": 0}})

    async def scenario() -> Lease:
        with anyio.CancelScope() as scope:
            lease = await manager.acquire("m", STT)
            try:
                scope.cancel()  # the client leaves
                await anyio.sleep_forever()
            finally:
                await lease.release()
        return lease

    lease = run(scenario)
    assert manager.get("m").state is ModelState.AVAILABLE
    assert engine_of(lease).closed


def test_a_model_in_use_is_not_unloaded_past_its_keep_alive(tmp_path: Path) -> None:
    manager, clock, _ = manager_for(tmp_path, {"m": {"keep_alive": 60}})
    model = manager.get("m")

    async def scenario() -> None:
        lease = await manager.acquire("m", STT)
        clock.advance(3600)
        assert await manager.reap() == []
        assert await manager.unload("m") is False  # nor by hand
        assert model.state is ModelState.LOADED
        assert not engine_of(lease).closed

        await lease.release()  # keep-alive counts from the end of the last request
        clock.advance(59)
        assert await manager.reap() == []
        clock.advance(1)
        assert await manager.reap() == ["m"]
        assert engine_of(lease).closed

    run(scenario)


def test_releasing_a_lease_twice_counts_once(tmp_path: Path) -> None:
    manager, _, _ = manager_for(tmp_path, {"m": {}})
    model = manager.get("m")

    async def scenario() -> None:
        first = await manager.acquire("m", STT)
        second = await manager.acquire("m", STT)
        await first.release()
        await first.release()
        assert (model.in_use, model.running) == (1, 1)
        await second.release()
        assert (model.in_use, model.running, model.requests_served) == (0, 0, 2)

    run(scenario)


# --- max_loaded_models ----------------------------------------------------------------


def test_the_least_recently_used_idle_model_is_evicted(tmp_path: Path) -> None:
    models: dict[str, dict[str, Any]] = {"a": {}, "b": {}, "c": {}}
    manager, clock, _ = manager_for(tmp_path, models, max_loaded_models=2)

    async def scenario() -> None:
        await use(manager, "a")
        clock.advance(10)
        await use(manager, "b")
        clock.advance(10)
        await use(manager, "a")  # now b is the least recently used
        clock.advance(10)
        b_engine = manager.get("b").engine

        await use(manager, "c")
        states = {m.alias: m.state for m in manager.models()}
        assert states == {"a": ModelState.LOADED, "b": ModelState.AVAILABLE, "c": ModelState.LOADED}
        assert isinstance(b_engine, FakeSttEngine) and b_engine.closed

    run(scenario)


def test_a_model_in_use_is_never_evicted(tmp_path: Path) -> None:
    models: dict[str, dict[str, Any]] = {"a": {}, "b": {}, "c": {}}
    manager, clock, _ = manager_for(tmp_path, models, max_loaded_models=2)

    async def scenario() -> None:
        held = await manager.acquire("a", STT)  # a: least recently used, but busy
        clock.advance(10)
        await use(manager, "b")
        clock.advance(10)
        await use(manager, "c")
        assert manager.get("a").state is ModelState.LOADED
        assert manager.get("b").state is ModelState.AVAILABLE  # the idle one went
        assert not engine_of(held).closed
        await held.release()

    run(scenario)


def test_when_every_loaded_model_is_busy_a_new_one_is_unavailable(tmp_path: Path) -> None:
    models: dict[str, dict[str, Any]] = {"a": {}, "b": {}, "c": {}}
    manager, _, stt = manager_for(tmp_path, models, max_loaded_models=2)

    async def scenario() -> None:
        a = await manager.acquire("a", STT)
        b = await manager.acquire("b", STT)
        with pytest.raises(ModelUnavailableError, match="busy"):
            await manager.acquire("c", STT)
        assert manager.get("c").state is ModelState.AVAILABLE  # not failed: retry later
        assert manager.get("c").running == 0, "the refused request gave its slot back"
        assert stt.loads == 2
        assert not engine_of(a).closed and not engine_of(b).closed

        await a.release()
        await use(manager, "c")  # now a, idle, makes room
        assert manager.get("a").state is ModelState.AVAILABLE
        await b.release()

    run(scenario)


# --- loading --------------------------------------------------------------------------


def test_ten_concurrent_first_acquires_load_once(tmp_path: Path) -> None:
    slow = SlowLoadingBackend()
    manager, _, _ = manager_for(
        tmp_path, {"m": {"backend": "fake-slow", "max_concurrency": 10}}, [slow]
    )
    model = manager.get("m")

    async def open_the_gate_when_all_wait() -> None:
        # Every request is admitted and waits on the model's load lock, then the load ends.
        for _ in range(10_000):
            if model.running == 10 and slow.load_started.is_set():
                break
            await asyncio.sleep(0)
        assert model.state is ModelState.LOADING
        assert model.running == 10
        slow.load_gate.set()

    async def scenario() -> list[Lease]:
        results = await asyncio.gather(
            *(manager.acquire("m", STT) for _ in range(10)), open_the_gate_when_all_wait()
        )
        leases = [lease for lease in results if isinstance(lease, Lease)]
        for lease in leases:
            await lease.release()
        return leases

    try:
        leases = run(scenario)
    finally:
        slow.release()
    assert len(leases) == 10
    assert slow.loads == 1
    assert len({id(lease.engine) for lease in leases}) == 1
    assert model.state is ModelState.LOADED


def test_states_follow_the_models_life(tmp_path: Path) -> None:
    slow = SlowLoadingBackend()
    manager, _, _ = manager_for(tmp_path, {"m": {"backend": "fake-slow"}}, [slow])
    model = manager.get("m")
    seen = [model.state]

    async def scenario() -> None:
        loading = asyncio.ensure_future(manager.load("m"))
        while not slow.load_started.is_set():
            await asyncio.sleep(0)
        seen.append(model.state)
        slow.load_gate.set()
        await loading
        seen.append(model.state)
        assert await manager.unload("m") is True
        seen.append(model.state)
        assert await manager.unload("m") is False  # already unloaded

    try:
        run(scenario)
    finally:
        slow.release()
    assert seen == [
        ModelState.AVAILABLE,
        ModelState.LOADING,
        ModelState.LOADED,
        ModelState.AVAILABLE,
    ]


def test_a_failed_load_marks_the_model_failed_and_others_still_serve(tmp_path: Path) -> None:
    broken = FailingBackend("CUDA out of memory")
    models = {"bad": {"backend": "fake-broken"}, "good": {}}
    manager, _, _ = manager_for(tmp_path, models, [broken])

    async def scenario() -> None:
        for _ in range(2):
            with pytest.raises(ModelUnavailableError, match="CUDA out of memory"):
                await manager.acquire("bad", STT)
        bad = manager.get("bad")
        assert bad.state is ModelState.FAILED
        assert bad.error is not None and "CUDA out of memory" in bad.error
        assert (bad.running, bad.in_use) == (0, 0)
        assert broken.loads == 1
        await use(manager, "good")
        assert manager.get("good").state is ModelState.LOADED

    run(scenario)


class FixableBackend(FailingBackend):
    """Fails to load until ``fixed``, then loads a fake STT engine."""

    fixed = False

    def _make_engine(self, model_dir: Path) -> Engine:
        if self.fixed:
            return FakeSttBackend()._make_engine(model_dir)
        return super()._make_engine(model_dir)


def test_a_failed_load_is_tried_again_after_a_while_or_when_asked(tmp_path: Path) -> None:
    """What broke a load may be fixed without a restart (an engine environment installed,
    memory freed): the first request after LOAD_RETRY_SECONDS, or an admin load, retries."""
    broken = FixableBackend("the xtts environment is not installed")
    manager, clock, _ = manager_for(tmp_path, {"bad": {"backend": "fake-broken"}}, [broken])

    async def scenario() -> None:
        with pytest.raises(ModelUnavailableError, match="not installed"):
            await manager.acquire("bad", STT)
        clock.advance(LOAD_RETRY_SECONDS / 2)
        with pytest.raises(ModelUnavailableError, match=r"after 15 s tries again"):
            await manager.acquire("bad", STT)
        assert broken.loads == 1
        clock.advance(LOAD_RETRY_SECONDS / 2)
        with pytest.raises(ModelUnavailableError, match="failed to load"):
            await manager.acquire("bad", STT)
        assert broken.loads == 2
        with pytest.raises(ModelUnavailableError, match="failed to load"):
            await manager.load("bad")  # the admin API's load does not wait
        assert broken.loads == 3
        broken.fixed = True  # the next try loads it
        clock.advance(LOAD_RETRY_SECONDS)
        await use(manager, "bad")
        assert manager.get("bad").state is ModelState.LOADED
        assert manager.get("bad").error is None

    run(scenario)


# --- admission ------------------------------------------------------------------------


def test_beyond_concurrency_and_queue_is_a_rate_limit_error(tmp_path: Path) -> None:
    manager, _, _ = manager_for(tmp_path, {"m": {"max_concurrency": 1, "max_queue": 1}})
    model = manager.get("m")

    async def scenario() -> None:
        running = await manager.acquire("m", STT)
        queued = asyncio.ensure_future(manager.acquire("m", STT))
        while model.waiting == 0:
            await asyncio.sleep(0)
        with pytest.raises(RateLimitError) as caught:
            await manager.acquire("m", STT)
        assert caught.value.retry_after >= 1
        assert caught.value.status_code == 429
        assert not queued.done()

        await running.release()  # the queued request gets the slot
        second = await queued
        assert (model.running, model.waiting) == (1, 0)
        await second.release()

    run(scenario)


def test_unknown_models_and_wrong_kinds_are_refused(tmp_path: Path) -> None:
    tts = FakeTtsBackend()
    manager, _, stt = manager_for(tmp_path, {"speaker": {"backend": "fake-tts"}}, [tts])

    async def scenario() -> None:
        with pytest.raises(ModelNotFoundError):
            await manager.acquire("nope", STT)
        with pytest.raises(InvalidRequestError, match="/v1/audio/speech"):
            await manager.acquire("speaker", STT)
        lease = await manager.acquire("speaker", ModelKind.TTS)
        await lease.release()

    run(scenario)
    assert (stt.loads, tts.loads) == (0, 1)


def test_stop_unloads_and_closes_every_engine(tmp_path: Path) -> None:
    manager, _, stt = manager_for(tmp_path, {"a": {}, "b": {}})

    async def scenario() -> None:
        await use(manager, "a")
        await use(manager, "b")
        await manager.stop()

    run(scenario)
    assert all(m.state is ModelState.AVAILABLE for m in manager.models())
    assert [engine.closed for engine in stt.engines] == [True, True]  # type: ignore[attr-defined]


def test_unknown_engine_options_stop_the_build(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        manager_for(tmp_path, {"m": {"options": {"colour": "red"}}})
    assert caught.value.message == "invalid configuration: models.m.options.colour: unknown option"


def test_a_model_dir_nobody_recognises_stops_the_build(tmp_path: Path) -> None:
    stray = tmp_path / "stray"
    stray.mkdir()
    settings = Settings(
        models={"m": ModelConfig(model=str(stray))}, data_dir=tmp_path, device="cpu"
    )
    with pytest.raises(ConfigError) as caught:
        build_manager(settings, BackendRegistry([FakeSttBackend(), FakeTtsBackend()]))
    assert "'m'" in caught.value.message
    assert "installed backends: fake-stt, fake-tts" in caught.value.message


def test_a_move_from_the_wrong_state_fails_loudly(tmp_path: Path) -> None:
    """ServedModel's moves check where they start: a manager bug shows at once instead of
    leaving a model half loaded."""
    manager, _, _ = manager_for(tmp_path, {"m": {}})
    model = manager.get("m")
    with pytest.raises(RuntimeError, match="leasing while available"):
        model.leased(0.0)
    with pytest.raises(RuntimeError, match="no move from available to unloading"):
        model.unloading()
    with pytest.raises(RuntimeError, match="more leases returned than taken"):
        model.returned(0.0)
    assert model.state is ModelState.AVAILABLE


def test_an_unloaded_models_voices_are_read_from_its_files_once(tmp_path: Path) -> None:
    """Listing voices reads files: done once, before the event loop runs, and again only
    when the model directory changes, so GET /v1/models never reads files on the loop."""
    tts = FakeTtsBackend()
    manager, _, _ = manager_for(tmp_path, {"speaker": {"backend": "fake-tts"}}, [tts])
    model = manager.get("speaker")
    assert tts.listings == 1  # at build time
    for _ in range(3):
        assert [v.id for v in manager.voices_of(model) or ()] == ["af_alloy", "am_echo", "bf_emma"]
    assert tts.listings == 1
    assert model.model_dir is not None
    (model.model_dir / "new-voice.bin").write_bytes(b"")  # the directory changes
    os.utime(model.model_dir, ns=(0, 10**18))
    manager.voices_of(model)
    assert tts.listings == 2
