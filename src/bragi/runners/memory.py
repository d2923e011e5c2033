"""How much memory an engine holds: a worker's is its whole process, measured live."""

from __future__ import annotations

import os

__all__ = ["engine_memory", "resident_bytes"]

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes(pid: int | None = None) -> int | None:
    """The resident set size of process ``pid`` (default: this one), in bytes; None where
    ``/proc`` cannot tell (not Linux, or the process is gone)."""
    try:
        with open(f"/proc/{pid if pid is not None else 'self'}/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def engine_memory(engine: object) -> int | None:
    """The memory of an engine in a worker: the worker's resident set (the interpreter,
    its libraries and the model; torch alone is a few hundred MB). None for an engine in
    the server's own process, which cannot be told apart from the server's."""
    from bragi.runners.proxy import WorkerSpeechToText, WorkerTextToSpeech

    if not isinstance(engine, WorkerSpeechToText | WorkerTextToSpeech):
        return None
    pid = engine.pid
    return resident_bytes(pid) if pid is not None else None
