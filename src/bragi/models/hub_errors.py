"""One clear line for each way a pull from the hub fails (used by the model store)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
from huggingface_hub import errors as hf_errors

from bragi.errors import (
    DiskFullError,
    HubUnreachableError,
    ModelFetchError,
    ModelRepoGatedError,
    ModelRepoNotFoundError,
)

if TYPE_CHECKING:
    from bragi.models.store import HubSource

__all__ = ["hub_error"]

_UNREACHABLE = (
    hf_errors.LocalEntryNotFoundError,  # what hf_hub_download raises once it gives up
    hf_errors.OfflineModeIsEnabled,
    httpx2.ConnectError,
    httpx2.ConnectTimeout,
)


def hub_error(
    exc: Exception, source: HubSource, endpoint: str, token: str | None, hub_dir: Path
) -> ModelFetchError | None:
    """The :mod:`bragi.errors` error for ``exc``; ``None`` for errors not ours to name."""
    repo, hub, why = source.repo_id, f"the hub ({endpoint})", _first_line(exc)
    missing = "was not found on the Hugging Face hub"
    if isinstance(exc, hf_errors.GatedRepoError):
        if token is None:
            how = "accept its licence on the hub and set HF_TOKEN"
            return ModelRepoGatedError(f"Model repo '{repo}' is gated: {how}")
        how = f"the token has no access: accept its licence at {endpoint}/{repo}"
        return ModelRepoGatedError(f"Model repo '{repo}' is gated and {how}")
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        rev = source.revision
        return ModelRepoNotFoundError(f"Revision '{rev}' of model repo '{repo}' {missing}")
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        hint = "" if token else " (if it is private, set HF_TOKEN)"
        return ModelRepoNotFoundError(f"Model repo '{repo}' {missing}{hint}")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # e.g. writing a ref
        return DiskFullError(f"no space left on device in {hub_dir} for '{source}'")
    if isinstance(exc, _UNREACHABLE):
        return HubUnreachableError(f"cannot reach {hub} and no cached copy of '{source}'")
    if isinstance(exc, httpx2.TransportError):
        return HubUnreachableError(f"lost the connection to {hub} during '{source}': {why}")
    if isinstance(exc, hf_errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "an error"
        return ModelFetchError(f"{hub} answered HTTP {status} while downloading '{source}'")
    if isinstance(exc, hf_errors.HFValidationError):
        return ModelRepoNotFoundError(f"'{repo}' is not a valid hub repo id: {why}")
    if isinstance(exc, OSError):  # e.g. the size check of a short download
        return ModelFetchError(f"downloading '{source}' failed: {why}")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
