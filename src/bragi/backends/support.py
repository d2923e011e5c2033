"""What every backend needs and would otherwise write again: its options as its own model,
whether its libraries are installed, and long speech cut where it is quietest."""

from __future__ import annotations

import importlib.util
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from bragi.backends.protocol import BackendOptions

__all__ = ["cut_at_quietest", "installed", "options_as"]

OptionsT = TypeVar("OptionsT", bound=BackendOptions)


def options_as(kind: type[OptionsT], options: BackendOptions) -> OptionsT:
    """``options`` as the backend's own options model: already one when the model manager
    validated them (every load through it), else validated now."""
    if isinstance(options, kind):
        return options
    return kind.model_validate(options.model_dump())


def installed(*modules: str) -> bool:
    """Whether every module can be imported, checked without importing any."""
    return all(importlib.util.find_spec(module) is not None for module in modules)


def cut_at_quietest(
    start: int, end: int, loudness: npt.NDArray[Any], longest: int
) -> list[tuple[int, int]]:
    """Frames ``start``..``end`` as pieces of at most ``longest`` frames, each cut at the
    quietest frame (least ``loudness``: energy, or a VAD's speech probability) of the
    second half of its window, so a cut falls between words where it can."""
    pieces: list[tuple[int, int]] = []
    while end - start > longest:
        low, high = start + longest // 2, start + longest
        quietest = low + int(np.argmin(loudness[low:high]))
        pieces.append((start, quietest))
        start = quietest
    pieces.append((start, end))
    return pieces
