"""Bragi's one exception tree.

Every error Bragi raises on purpose while serving is a :class:`BragiError`. Library
errors are translated into one of these at the backend boundary; the API's single
handler turns any of them into an OpenAI error body (``{"error": {message, type,
param, code}}``) with the status the class declares::

    BragiError                      500 server_error
    ├── InvalidRequestError         400 invalid_request_error
    │   ├── AudioDecodeError        400  the upload is not decodable audio
    │   ├── EmptyAudioError         400  a file of no bytes; a silent voice reference
    │   ├── AudioTooLongError       400  decodes to more than max_audio_minutes
    │   ├── UnsupportedCapabilityError 400  e.g. translation on an English-only model
    │   ├── UnknownVoiceError       400  names the voices that exist
    │   └── ProtocolError           400  a malformed Wyoming event (bad JSON, bad field)
    ├── AuthenticationError         401 invalid_api_key
    ├── PermissionDeniedError       403  e.g. admin route with a user key
    ├── NotFoundError               404
    │   └── ModelNotFoundError      404 model_not_found
    ├── ConflictError               409  e.g. a cloned voice's name already taken
    ├── PayloadTooLargeError        413
    ├── RateLimitError              429 (carries Retry-After)
    ├── ModelUnavailableError       503  model still downloading, loading or failed
    ├── BackendUnavailableError     (config) the engine's library is not installed
    ├── ModelFetchError             503 (store) download failed; also a bad checksum
    │   ├── ModelRepoNotFoundError  404  no such repo (or revision) on the hub
    │   ├── ModelRepoGatedError     403  gated repo: licence not accepted, or no token
    │   ├── HubUnreachableError     503  offline or no network, and no cached copy
    │   └── DiskFullError           507  not enough free space for the download
    ├── StorageError                503  the data dir cannot be written (read-only)
    │   └── StorageFullError        507  the data dir's disk is full
    └── EngineError                 500  the engine failed while running

    ConfigError                     no HTTP status: a bad configuration, found at start-up
                                    or by a command (one line, exit code 2)

A :class:`ConfigError` is not a :class:`BragiError` on purpose: nothing a client sends
should be reported as the server's configuration being wrong, so code that handles a
request translates it (a bad model name is a 400 or 404), and one that still escapes is
a bug, logged, answered as a plain 500.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AudioDecodeError",
    "AudioTooLongError",
    "AuthenticationError",
    "BackendUnavailableError",
    "BragiError",
    "ConfigError",
    "ConflictError",
    "DiskFullError",
    "EmptyAudioError",
    "EngineError",
    "HubUnreachableError",
    "InvalidRequestError",
    "ModelFetchError",
    "ModelNotFoundError",
    "ModelRepoGatedError",
    "ModelRepoNotFoundError",
    "ModelUnavailableError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitError",
    "StorageError",
    "StorageFullError",
    "UnknownVoiceError",
    "UnsupportedCapabilityError",
]


class BragiError(Exception):
    """Base of every error Bragi raises on purpose."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code

    def to_body(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI error body for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class ConfigError(Exception):
    """A bad configuration value; stops start-up with one line and exit code 2."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidRequestError(BragiError):
    status_code = 400
    error_type = "invalid_request_error"


class AudioDecodeError(InvalidRequestError):
    default_code = "invalid_audio"


class EmptyAudioError(InvalidRequestError):
    default_code = "empty_audio"


class AudioTooLongError(InvalidRequestError):
    default_code = "audio_too_long"


class UnsupportedCapabilityError(InvalidRequestError):
    default_code = "unsupported"


class UnknownVoiceError(InvalidRequestError):
    default_code = "voice_not_found"


class ProtocolError(InvalidRequestError):
    """A Wyoming client sent something that is not a well-formed event."""

    default_code = "invalid_event"


class AuthenticationError(BragiError):
    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(BragiError):
    status_code = 403
    error_type = "invalid_request_error"
    default_code = "permission_denied"


class NotFoundError(BragiError):
    status_code = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class ConflictError(BragiError):
    """The request clashes with what is stored, e.g. a voice name that is taken."""

    status_code = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class PayloadTooLargeError(BragiError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"


class RateLimitError(BragiError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int = 1, param: str | None = None):
        super().__init__(message, param=param)
        self.retry_after = max(1, retry_after)


class ModelUnavailableError(BragiError):
    status_code = 503
    error_type = "server_error"
    default_code = "model_unavailable"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message, param=param, code=code)
        #: Seconds worth waiting before trying again (a Retry-After header), when known.
        self.retry_after = retry_after


class BackendUnavailableError(BragiError):
    """The engine's library is not installed; the message gives the install command."""

    status_code = 503
    default_code = "backend_unavailable"


class ModelFetchError(BragiError):
    """Getting a model's files failed (missing repo, gated, offline, disk full, bad hash)."""

    status_code = 503
    default_code = "model_fetch_failed"


class ModelRepoNotFoundError(ModelFetchError):
    """The hub has no such repo (or revision), or it is private and no token was given."""

    status_code = 404
    error_type = "invalid_request_error"
    default_code = "model_repo_not_found"


class ModelRepoGatedError(ModelFetchError):
    """The repo is gated: its licence must be accepted on the hub, and HF_TOKEN set."""

    status_code = 403
    error_type = "invalid_request_error"
    default_code = "model_repo_gated"


class HubUnreachableError(ModelFetchError):
    """Offline mode, or the hub cannot be reached, and the model is not in the store."""

    default_code = "hub_unreachable"


class DiskFullError(ModelFetchError):
    """Not enough free disk space for a download."""

    status_code = 507
    default_code = "disk_full"


class EngineError(BragiError):
    """The engine failed while running a request."""

    default_code = "engine_error"


class StorageError(BragiError):
    """Bragi cannot write to its data dir: read-only (a disk remounted after an error),
    or not its own. What is stored can still be read and served."""

    status_code = 503
    default_code = "storage_unavailable"


class StorageFullError(StorageError):
    """The data dir's disk (or quota) is full."""

    status_code = 507
    default_code = "disk_full"
