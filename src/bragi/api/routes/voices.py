"""``/v1/audio/voices``: list built-in and cloned voices; create, read and delete cloned ones.

Creating follows OpenAI's custom-voices API (``POST /v1/audio/voices``, multipart,
``name`` and ``audio_sample``; ``client.audio.voices.create`` works as is) and takes
``file`` for the recording too, plus Bragi's ``transcript``, ``model`` and ``shared``. A
recording without a transcript is transcribed once, here, by
``voice_transcription_model``. Every key may create voices. A voice is a recording of a
person, so it is listed, read and spoken in only with the key that created it (or an
admin key), unless it was made ``shared``; only its creator's key or an admin key
deletes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import FormData, UploadFile

from bragi.api.deps import ApiKey, Manager, SettingsDep, VoiceStoreDep
from bragi.api.forms import form_params, read_form, upload_bytes
from bragi.api.upload_limit import limited_receive
from bragi.auth import KeyRecord
from bragi.backends.protocol import ModelKind
from bragi.config import Settings
from bragi.errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UnsupportedCapabilityError,
)
from bragi.models.manager import ModelManager
from bragi.models.openai_voices import OPENAI_VOICES
from bragi.voices import StoredVoice, VoiceStore
from bragi.voices.store import voice_not_found
from bragi.voices.transcribe import transcribe_with

__all__ = ["builtin_voice_names", "can_use", "router", "voice_object"]

router = APIRouter(tags=["audio"])
log = logging.getLogger(__name__)

#: The multipart parts that may carry the recording: OpenAI's name, and the name
#: Bragi's other uploads use.
_AUDIO_FIELDS = ("audio_sample", "file")


class CreateVoiceParams(BaseModel):
    """The text parts of ``POST /v1/audio/voices``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)  # the characters allowed are checked by the store
    transcript: str | None = None
    model: str | None = None
    consent: str | None = None  # OpenAI's consent recording id; kept, not checked
    type: Literal["audio_sample"] = "audio_sample"
    #: Bragi's own: every key may use the voice, not only its creator's (and admin keys).
    shared: bool = False


def voice_object(voice: StoredVoice) -> dict[str, Any]:
    """A cloned voice as the API shows it: OpenAI's voice object plus Bragi's fields."""
    return {
        "id": voice.id,
        "object": "audio.voice",
        "type": "audio_sample",  # OpenAI's word for a voice cloned from a recording
        "name": voice.name,
        "created_at": voice.created_at,
        "model": voice.model,
        "language": None,
        "gender": None,
        "transcript": voice.transcript,
        "transcribed_by": voice.transcribed_by,
        "duration": voice.duration,
        "sample_rate": voice.sample_rate,
        "shared": voice.shared,
    }


def builtin_voice_names(manager: ModelManager, settings: Settings) -> set[str]:
    """Names a request resolves to a built-in voice, so a cloned voice may not take them."""
    names = set(OPENAI_VOICES) | set(settings.voices)
    for model in manager.models():
        names.update(voice.id for voice in manager.voices_of(model) or ())
    return names


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"Maximum reference recording size ({limit} bytes) exceeded. Send a shorter clip "
        "or raise voice_upload_limit_mb.",
        param="audio_sample",
    )


async def _read_create_form(request: Request, limit: int) -> FormData:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        # Read and drop the body (the server-wide limit bounds it) so the client, still
        # sending, reads this answer instead of a reset connection.
        async for _ in request.stream():
            pass
        raise _too_large(limit)
    # The body is counted as it arrives, so one without a length stops at the limit too.
    limited = limited_receive(request.receive, limit, _too_large(limit))
    return await read_form(Request(request.scope, limited))


async def _recording(form: FormData) -> tuple[bytes, str]:
    given = [field for field in _AUDIO_FIELDS if isinstance(form.get(field), UploadFile)]
    if len(given) > 1:
        raise InvalidRequestError(
            "Send the recording once, as `audio_sample` or as `file`.", param="audio_sample"
        )
    field = given[0] if given else _AUDIO_FIELDS[0]
    return await upload_bytes(form, field), field


def _check_model(manager: ModelManager, alias: str) -> None:
    model = manager.get(alias)  # 404 for an unknown alias
    if model.kind is ModelKind.STT:
        raise InvalidRequestError(
            f"Model `{alias}` is a speech-to-text model; a voice is for a text-to-speech model.",
            param="model",
            code="model_kind_mismatch",
        )


@router.post(
    "/v1/audio/voices",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["name", "audio_sample"],
                        "properties": {
                            "name": {"type": "string"},
                            "audio_sample": {"type": "string", "format": "binary"},
                            "transcript": {"type": "string"},
                            "model": {"type": "string"},
                            "consent": {"type": "string"},
                            "shared": {"type": "boolean"},
                        },
                    }
                }
            },
        }
    },
)
async def create_voice(
    request: Request,
    manager: Manager,
    settings: SettingsDep,
    store: VoiceStoreDep,
    key: ApiKey,
) -> dict[str, Any]:
    """Clone a voice from a recording of it: checked, stored, and usable by its name or id."""
    limit = settings.voice_upload_limit_bytes
    form = await _read_create_form(request, limit)
    try:
        if form.get("type") == "prompt":
            raise UnsupportedCapabilityError(
                "Bragi clones voices from recordings only (type 'audio_sample'); "
                "voices described by a prompt are not supported.",
                param="type",
            )
        params = form_params(form, CreateVoiceParams)
        data, field = await _recording(form)
    finally:
        await form.close()
    if params.model is not None:
        _check_model(manager, params.model)
    reserved = builtin_voice_names(manager, settings)
    check = partial(store.check_upload, params.name, data, params.transcript, reserved, field)
    name, audio, transcript = await to_thread.run_sync(check)
    heard, why = None, None
    if transcript is None:  # written once, now, by a speech-to-text model
        heard, why = await transcribe_with(manager, settings.voice_transcription_model, audio)
        if why is not None:
            log.warning("cloned voice %s is stored without a transcript: %s", name, why)
    add = partial(
        store.add,
        name,
        audio,
        transcript=heard.text if heard else transcript,
        timed_transcript=heard.timed if heard else (),
        transcribed_by=settings.voice_transcription_model if heard else None,
        model=params.model,
        consent=params.consent,
        created_by=key.id if key is not None else None,
        shared=params.shared,
    )
    voice = await to_thread.run_sync(add)
    return voice_object(voice)


def can_use(key: KeyRecord | None) -> Callable[[StoredVoice], bool]:
    """Whether the caller's key may list, read and speak in a cloned voice."""
    if key is None:  # auth is off: everything is the operator's
        return lambda voice: True
    return lambda voice: voice.usable_by(key.id, admin=key.is_admin)


def _own_voice(store: VoiceStore, voice_id: str, key: KeyRecord | None) -> StoredVoice:
    """The voice, or the 404 an unknown one gets when the caller may not use it."""
    voice = store.get(voice_id)
    if not can_use(key)(voice):
        raise voice_not_found(voice_id)  # as if it did not exist
    return voice


@router.get("/v1/audio/voices")
async def list_voices(
    manager: Manager, store: VoiceStoreDep, key: ApiKey, model: str | None = None
) -> dict[str, Any]:
    """Each TTS model's built-in voices (or ``?model=``'s), then the cloned voices."""
    models = [manager.get(model)] if model else manager.models()
    data: list[dict[str, Any]] = []
    for served in models:
        voices = manager.voices_of(served)
        if voices is None:
            continue
        data.extend(
            {
                "id": v.id,
                "model": served.alias,
                "language": v.language,
                "gender": v.gender,
                "type": "builtin",
            }
            for v in voices
        )
    if model is None or models[0].kind is not ModelKind.STT:
        visible = can_use(key)
        cloned = [voice for voice in await to_thread.run_sync(store.list) if visible(voice)]
        # A cloned voice made for one model still shows under no filter and under its own.
        data.extend(voice_object(v) for v in cloned if model is None or v.model in (None, model))
    return {"object": "list", "data": data}


@router.get("/v1/audio/voices/{voice_id}")
async def get_voice(voice_id: str, store: VoiceStoreDep, key: ApiKey) -> dict[str, Any]:
    """One cloned voice, by id (or by name)."""
    voice = await to_thread.run_sync(_own_voice, store, voice_id, key)
    return voice_object(voice)


@router.delete("/v1/audio/voices/{voice_id}")
async def delete_voice(voice_id: str, store: VoiceStoreDep, key: ApiKey) -> dict[str, Any]:
    """Delete a cloned voice (by id, or by name): its creator's key or an admin key."""
    voice = await to_thread.run_sync(_own_voice, store, voice_id, key)
    if key is not None and not key.is_admin and voice.created_by != key.id:
        raise PermissionDeniedError(
            f"Voice '{voice.name}' was created with another key; only that key or an "
            "admin key may delete it."
        )
    deleted = await to_thread.run_sync(store.delete, voice.id)
    return {"id": deleted.id, "object": "audio.voice.deleted", "deleted": True}
