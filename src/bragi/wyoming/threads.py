"""Engine calls in worker threads that a cancelled connection still waits for.

A cancelled ``await to_thread.run_sync(...)`` returns at once and leaves the thread
running; an engine's generator must not be closed while a thread is inside it ("generator
already executing"), nor its lease released while it computes. So a cancelled caller
here waits for the call in flight to end, then is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

from anyio import to_thread

__all__ = ["in_thread"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


async def in_thread(func: Callable[[*Ts], T], *args: *Ts) -> T:
    call = asyncio.ensure_future(to_thread.run_sync(func, *args))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        await asyncio.gather(call, return_exceptions=True)
        raise
