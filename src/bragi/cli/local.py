"""Running an engine in this process, without a server (``bragi transcribe``/``speak``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from bragi.backends.protocol import Engine, ModelKind
from bragi.backends.registry import BackendRegistry
from bragi.config import Settings
from bragi.errors import ModelUnavailableError
from bragi.models.configure import build_manager
from bragi.models.served import ModelState

__all__ = ["default_alias", "with_local_engine"]

Result = TypeVar("Result")


def default_alias(settings: Settings, kind: ModelKind) -> str:
    """The first configured model of ``kind`` (``whisper-1``/``tts-1`` in the starter set)."""
    manager = build_manager(settings, BackendRegistry.from_entry_points())
    for model in manager.models():
        if model.kind is kind:
            return model.alias
    raise ModelUnavailableError(f"no {kind.value.upper()} model is configured")


def with_local_engine(
    settings: Settings, alias: str, kind: ModelKind, work: Callable[[Engine], Result]
) -> Result:
    """Fetch and load ``alias`` here, run ``work`` on its engine, unload."""

    async def run() -> Result:
        manager = build_manager(settings, BackendRegistry.from_entry_points())
        model = manager.get(alias)
        if model.state is ModelState.DOWNLOADING:
            await manager.prepare(model)
        lease = await manager.acquire(alias, kind)
        try:
            return await asyncio.to_thread(work, lease.engine)
        finally:
            await lease.release()
            await manager.stop()

    return asyncio.run(run())
