"""Helpers shared by the runner tests (the fixtures are in ``conftest.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fakes import sine

__all__ = ["SPEECH", "STEP_TIMEOUT", "THREE_SENTENCES", "StartEngine", "process_exists"]

#: Generous for a loaded two-core machine; the hang test sets its own, short, timeout.
STEP_TIMEOUT = 30.0

StartEngine = Callable[..., Any]

SPEECH = sine(1.0, 16_000)
THREE_SENTENCES = "One sentence. Another sentence. The last sentence."


def process_exists(pid: int) -> bool:
    """Whether ``pid`` is a live process (a reaped worker is gone from /proc)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists()
