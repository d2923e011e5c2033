"""Resolving ``device: auto`` without importing torch."""

from __future__ import annotations

import logging
import os
from functools import cache
from importlib.util import find_spec
from typing import Literal

from bragi.types import Device

__all__ = ["cuda_available", "resolve_device", "usable_cpus"]

log = logging.getLogger(__name__)


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@cache
def cuda_available() -> bool:
    """Whether a CUDA device is usable by CTranslate2 or ONNX Runtime (checked once)."""
    if find_spec("ctranslate2") is not None:
        try:
            import ctranslate2

            if int(ctranslate2.get_cuda_device_count()) > 0:
                return True
        except Exception:  # a broken CUDA install means "no GPU", not a crash
            log.debug("ctranslate2 cannot see a GPU", exc_info=True)
    if find_spec("onnxruntime") is not None:
        try:
            import onnxruntime

            return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        except Exception:
            log.debug("onnxruntime cannot see a GPU", exc_info=True)
    return False


def resolve_device(setting: Literal["auto", "cpu", "cuda"]) -> Device:
    if setting == "auto":
        return "cuda" if cuda_available() else "cpu"
    return setting
