"""Realtime events: client events parsed and validated, server events built, ids made.

Every server event has a unique ``event_id`` (``event_…``); items are ``item_…`` and
sessions ``sess_…``. A client event that cannot be used raises an
:class:`~bragi.errors.InvalidRequestError` whose code says why; the session turns it
into an ``error`` event and stays open.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from bragi.errors import BragiError, InvalidRequestError
from bragi.realtime.session_config import validation_error

__all__ = [
    "Append",
    "Clear",
    "ClientEvent",
    "Commit",
    "SessionUpdate",
    "error_event",
    "new_id",
    "parse_client_event",
    "user_item",
]

#: Client events of conversation sessions: known, but meaningless when transcribing.
CONVERSATION_EVENTS = frozenset(
    {
        "response.create",
        "response.cancel",
        "conversation.item.create",
        "conversation.item.retrieve",
        "conversation.item.truncate",
        "conversation.item.delete",
        "output_audio_buffer.clear",
    }
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str | None = None


class SessionUpdate(_Event):
    type: Literal["session.update", "transcription_session.update"]
    session: Any = None

    @property
    def beta(self) -> bool:
        return self.type == "transcription_session.update"


class Append(_Event):
    type: Literal["input_audio_buffer.append"]
    audio: str

    def decoded(self) -> bytes:
        try:
            return base64.b64decode(self.audio, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError(
                "Invalid 'audio': not valid base64. Send the audio bytes base64-encoded.",
                param="audio",
                code="invalid_value",
            ) from None


class Commit(_Event):
    type: Literal["input_audio_buffer.commit"]


class Clear(_Event):
    type: Literal["input_audio_buffer.clear"]


ClientEvent = SessionUpdate | Append | Commit | Clear
_EVENTS: dict[str, type[_Event]] = {
    "session.update": SessionUpdate,
    "transcription_session.update": SessionUpdate,
    "input_audio_buffer.append": Append,
    "input_audio_buffer.commit": Commit,
    "input_audio_buffer.clear": Clear,
}


def client_event_id(text: str | bytes) -> str | None:
    """The ``event_id`` of a frame, if it is JSON that has one (for error replies)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    event_id = value.get("event_id") if isinstance(value, dict) else None
    return event_id if isinstance(event_id, str) else None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def parse_client_event(text: str) -> ClientEvent:
    try:
        # Python's json takes NaN and Infinity; JSON (and OpenAI's parser) does not
        value = json.loads(text, parse_constant=_not_json)
    except ValueError as exc:
        raise InvalidRequestError(
            f"The server failed to parse the event as JSON: {exc}.", code="invalid_json"
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            "Invalid event: expected a JSON object with a 'type'.", code="invalid_type"
        )
    kind = value.get("type")
    if not isinstance(kind, str):
        raise InvalidRequestError(
            "Missing required parameter: 'type'.", param="type", code="missing_required_parameter"
        )
    model = _EVENTS.get(kind)
    if model is None:
        if kind in CONVERSATION_EVENTS:
            raise InvalidRequestError(
                f"'{kind}' belongs to conversation sessions; this is a transcription session "
                "(events: input_audio_buffer.append/commit/clear, session.update).",
                param="type",
                code="unsupported_event",
            )
        supported = ", ".join(f"'{name}'" for name in _EVENTS)
        raise InvalidRequestError(
            f"Invalid value: '{kind}'. Supported values are: {supported}.",
            param="type",
            code="invalid_value",
        )
    try:
        event = model.model_validate(value)
    except ValidationError as exc:
        raise validation_error(exc, "") from None
    assert isinstance(event, SessionUpdate | Append | Commit | Clear)
    return event


def error_event(error: BragiError, client_event_id: str | None = None) -> dict[str, Any]:
    """An ``error`` server event (without ``event_id``: the sender adds one)."""
    body = error.to_body()["error"]
    return {"type": "error", "error": body | {"event_id": client_event_id}}


def user_item(item_id: str, transcript: str | None) -> dict[str, Any]:
    """The conversation item a committed turn becomes."""
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_audio", "transcript": transcript}],
    }
