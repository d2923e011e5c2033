"""The diarization model a manager serves, or the error that says how to get one."""

from __future__ import annotations

from bragi.errors import InvalidRequestError
from bragi.models.manager import ModelManager
from bragi.models.served import ServedModel

__all__ = ["require_diarizer"]


def require_diarizer(manager: ModelManager) -> ServedModel:
    """The first diarization model configured; else a 400 ``diarization_unavailable``."""
    served = manager.diarizer()
    if served is None:
        raise InvalidRequestError(
            "No speaker-diarization model is configured: `bragi pull "
            "pyannote-segmentation-3.0` (the starter set serves it from the next start), or "
            "configure a model of kind diarization (docs/diarization.md).",
            param="response_format",
            code="diarization_unavailable",
        )
    return served
