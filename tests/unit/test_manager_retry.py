"""A model whose download failed (hub unreachable, not cached yet) is tried again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bragi.backends.registry import BackendRegistry
from bragi.config import ModelConfig, Settings
from bragi.errors import HubUnreachableError
from bragi.models.configure import build_manager
from bragi.models.served import ModelState
from bragi.models.store import HubSource, ModelStore
from fakes import FakeSttBackend, make_model_dir


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
