"""Reading multipart forms into validated parameters, with OpenAI-shaped 400s."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from bragi.errors import BragiError, InvalidRequestError

__all__ = [
    "OnFile",
    "form_params",
    "invalid_request",
    "json_params",
    "read_form",
    "upload_bytes",
    "upload_file",
]

Params = TypeVar("Params", bound=BaseModel)
#: Called with the text fields read so far when the first file part begins.
OnFile = Callable[[dict[str, str]], Awaitable[None]]
_LIMITS: dict[str, Any] = {"max_files": 2, "max_fields": 64}


class _PausingParser(MultiPartParser):
    """Starlette's multipart parser, pausing once, when the first file part begins, to
    await ``on_file`` with the text fields before it. The rest of the body is not read
    until it returns; if it raises, it is not read at all."""

    def __init__(
        self, headers: Headers, stream: AsyncGenerator[bytes, None], on_file: OnFile
    ) -> None:
        super().__init__(headers, self._pausing(stream), **_LIMITS)
        self._on_file: OnFile | None = on_file
        self._file_begun = False

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        self._file_begun |= self._current_part.file is not None

    async def _pausing(self, stream: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        async for chunk in stream:
            yield chunk
            if self._file_begun and self._on_file is not None:
                on_file, self._on_file = self._on_file, None
                await on_file({k: v for k, v in self.items if isinstance(v, str)})


async def read_form(request: Request, *, on_file: OnFile | None = None) -> FormData:
    """The request's form. With ``on_file``, a multipart body is read up to its first
    file, ``on_file`` is awaited with the fields before it, then the rest is read."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise InvalidRequestError(
            "This endpoint takes multipart/form-data with a `file` part.", param="file"
        )
    try:
        if on_file is None or not content_type.startswith("multipart/form-data"):
            return await request.form(**_LIMITS)
        async with aclosing(request.stream()) as stream:
            return await _PausingParser(request.headers, stream, on_file).parse()
    except BragiError:  # from on_file, or an upload past the size limit
        raise
    except MultiPartException as exc:
        raise InvalidRequestError(f"Could not parse the multipart body: {exc.message}") from exc
    except Exception as exc:  # python-multipart / starlette parse errors
        if getattr(exc, "status_code", None) == 413 or type(exc).__name__ == "PayloadTooLargeError":
            raise
        raise InvalidRequestError(f"Could not parse the multipart body: {exc}") from exc


def form_params(form: FormData, model: type[Params]) -> Params:
    """Validate the form's text fields; ``name[]`` keys become lists."""
    values: dict[str, Any] = {}
    for key in form:
        if isinstance(form[key], UploadFile):
            continue
        if key.endswith("[]"):
            values[key[:-2]] = [str(item) for item in form.getlist(key)]
        else:
            values[key] = form[key]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise invalid_request(exc) from None


def json_params(body: bytes, model: type[Params]) -> Params:
    """Validate a JSON body (read by the route itself, so auth is checked first)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None


def invalid_request(error: ValidationError) -> InvalidRequestError:
    """The OpenAI-style 400 for the first problem pydantic found."""
    first = error.errors()[0]
    param = ".".join(str(part) for part in first["loc"]) or None
    if first["type"] == "json_invalid":
        reason = first.get("ctx", {}).get("error", first["msg"])
        return InvalidRequestError(f"We could not parse the JSON body of your request: {reason}")
    if first["type"] == "model_type" and param is None:
        return InvalidRequestError("The request body must be a JSON object.")
    if first["type"] == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}"
    elif first["type"] == "missing":
        message = f"Missing required parameter: '{param}'."
    else:
        message = f"Invalid value for '{param}': {first['msg']}."
    return InvalidRequestError(message, param=param)


def upload_file(form: FormData, field: str = "file") -> UploadFile:
    upload = form.get(field)
    if not isinstance(upload, UploadFile):
        raise InvalidRequestError(
            f"Missing required parameter: '{field}' (an audio file part).", param=field
        )
    return upload


async def upload_bytes(form: FormData, field: str = "file") -> bytes:
    return await upload_file(form, field).read()
