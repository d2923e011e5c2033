"""The manager's stop() with engines in worker processes: all closed at once, and a
worker stuck in a step killed when the deadline passes, so shutdown fits Kubernetes'
grace period whatever the engines do."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from anyio import to_thread

from bragi.backends.protocol import ModelKind, TranscribeOptions
from bragi.backends.registry import BackendRegistry
from bragi.config import ModelConfig, Settings
from bragi.errors import ModelUnavailableError
from bragi.models.configure import build_manager
from bragi.runners import WorkerSpeechToText
from childfakes import STT, Script
from fakes import make_model_dir, wait_until
from runnerkit import SPEECH, STEP_TIMEOUT, process_exists


def test_stop_closes_workers_together_and_kills_a_stuck_one(tmp_path: Path, script: Script) -> None:
    models = {
        alias: ModelConfig(
            model=str(make_model_dir(tmp_path / "models", STT.name, alias)),
            backend=STT.name,
            runner="worker",
            worker_timeout=STEP_TIMEOUT,
            options={"workdir": str(script.dir)},
        )
        for alias in ("stuck", "idle")
    }
    settings = Settings(models=models, device="cpu", data_dir=tmp_path / "data")
    manager = build_manager(settings, BackendRegistry([STT]))
    pids: list[int] = []

    async def scenario() -> None:
        async with await manager.acquire("idle", ModelKind.STT):
            pass
        lease = await manager.acquire("stuck", ModelKind.STT)
        engine = lease.engine
        assert isinstance(engine, WorkerSpeechToText)
        segments, _ = engine.transcribe(SPEECH, TranscribeOptions(prompt="hang@0"))
        step = asyncio.ensure_future(to_thread.run_sync(next, segments))
        await to_thread.run_sync(script.wait_for, "hang 0")
        pids.extend(m.engine.pid for m in manager.models() if m.engine)  # type: ignore[union-attr]
        await asyncio.wait_for(manager.stop(timeout=1.0), 10)
        with pytest.raises(ModelUnavailableError, match="stuck"):
            await step
        await lease.release()

    asyncio.run(scenario())
    assert len(pids) == 2
    wait_until(lambda: not any(process_exists(pid) for pid in pids), what="both workers gone")
    assert "engine closed" in script.events(), "the idle worker was shut down, not killed"
