"""Reading multipart forms into validated parameters, with OpenAI-shaped 400s."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from bragi.errors import InvalidRequestError

__all__ = ["form_params", "invalid_request", "json_params", "read_form", "upload_bytes"]

Params = TypeVar("Params", bound=BaseModel)


async def read_form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise InvalidRequestError(
            "This endpoint takes multipart/form-data with a `file` part.", param="file"
        )
    try:
        return await request.form(max_files=2, max_fields=64)
    except InvalidRequestError:
        raise
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


async def upload_bytes(form: FormData, field: str = "file") -> bytes:
    upload = form.get(field)
    if not isinstance(upload, UploadFile):
        raise InvalidRequestError(
            f"Missing required parameter: '{field}' (an audio file part).", param=field
        )
    return await upload.read()
