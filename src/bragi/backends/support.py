"""What every backend needs and would otherwise write again: its options as its own model,
and whether its libraries are installed."""

from __future__ import annotations

import importlib.util
from typing import TypeVar

from bragi.backends.protocol import BackendOptions

__all__ = ["installed", "options_as"]

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
