"""The one place errors become responses: every error leaves as an OpenAI error body."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bragi.errors import BragiError, InvalidRequestError, ModelUnavailableError, RateLimitError

__all__ = ["error_response", "install_error_handlers"]

log = logging.getLogger(__name__)

_HTTP_TYPES = {401: "invalid_request_error", 404: "invalid_request_error"}


def error_response(error: BragiError) -> JSONResponse:
    headers = {}
    if isinstance(error, RateLimitError):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, ModelUnavailableError) and error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if error.status_code >= 500:
        headers["x-should-retry"] = "false" if error.status_code == 500 else "true"
    elif error.status_code == 409:  # openai clients retry 409s; a taken name stays taken
        headers["x-should-retry"] = "false"
    return JSONResponse(error.to_body(), status_code=error.status_code, headers=headers)


async def _bragi_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BragiError)
    if exc.status_code >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc.message)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    if first.get("type") == "json_invalid":  # its loc is a character offset, not a field
        context = first.get("ctx")
        reason = context.get("error", first["msg"]) if isinstance(context, dict) else first["msg"]
        message = f"We could not parse the JSON body of your request: {reason}"
        return error_response(InvalidRequestError(message))
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
    param = ".".join(location) or None
    message = f"{param}: {first['msg']}" if param else str(first["msg"])
    return error_response(InvalidRequestError(message, param=param))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    body = {
        "error": {
            "message": str(exc.detail),
            "type": _HTTP_TYPES.get(exc.status_code, "invalid_request_error"),
            "param": None,
            "code": None,
        }
    }
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = BragiError("The server had an error while processing your request.").to_body()
    return JSONResponse(body, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BragiError, _bragi_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
