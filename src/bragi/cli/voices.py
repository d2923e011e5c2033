"""``bragi voices list|add|rm``: the cloned voices in the data dir, without a server.

A running server sharing the data dir sees the changes at once (it reads the store on
each request). ``add`` checks the recording as ``POST /v1/audio/voices`` does; it
cannot see the voices of models that are not loaded, so it reserves only the OpenAI
names and the configured ``voices:`` mappings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bragi.config import Settings
from bragi.voices import VoiceStore

__all__ = ["register"]


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = commands.add_parser(
        "voices",
        help="manage cloned voices",
        description="List, add and remove cloned voices (kept in the data dir's voices/).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list cloned voices")
    common(listing)
    listing.set_defaults(handler=_list)
    add = actions.add_parser("add", help="clone a voice from a recording of it")
    common(add)
    add.add_argument("name", help="the name requests use as `voice`")
    add.add_argument("file", type=Path, help="the recording: any format FFmpeg reads")
    add.add_argument(
        "--transcript",
        help="what the recording says (default: transcribed by voice_transcription_model)",
    )
    add.add_argument("--model", help="the model alias the voice is meant for")
    add.add_argument(
        "--shared",
        action="store_true",
        help="every API key may use it (else only admin keys: it has no creator's key)",
    )
    add.set_defaults(handler=_add)
    remove = actions.add_parser("rm", help="delete a cloned voice by name or id")
    common(remove)
    remove.add_argument("voice", metavar="NAME_OR_ID")
    remove.set_defaults(handler=_remove)


def _settings(args: argparse.Namespace) -> Settings:
    from bragi.cli.common import settings_from_args

    return settings_from_args(args)


def _list(args: argparse.Namespace) -> int:
    voices, problems = VoiceStore.for_settings(_settings(args)).scan()
    print(f"{'ID':<30} {'NAME':<24} {'SECONDS':>7} {'MODEL':<16} {'SHARED':<6} CREATED")
    for voice in voices:
        created = datetime.fromtimestamp(voice.created_at, UTC).strftime("%Y-%m-%d %H:%M")
        model, shared = voice.model or "-", "yes" if voice.shared else "no"
        print(
            f"{voice.id:<30} {voice.name:<24} {voice.duration:>7.1f} {model:<16} "
            f"{shared:<6} {created}"
        )
    for problem in problems:
        print(f"bragi: ignoring {problem.path}: {problem.reason}", file=sys.stderr)
    return 0


def _add(args: argparse.Namespace) -> int:
    from bragi.errors import ModelNotFoundError
    from bragi.models.openai_voices import OPENAI_VOICES
    from bragi.models.starter import starter_models

    settings = _settings(args)
    aliases = settings.models if settings.models is not None else starter_models()
    if args.model is not None and args.model not in aliases:
        known = ", ".join(sorted(aliases)) or "none"
        raise ModelNotFoundError(f"no model {args.model!r} is configured (configured: {known})")
    store = VoiceStore.for_settings(settings)
    reserved = set(OPENAI_VOICES) | set(settings.voices)
    name, audio, transcript = store.check_upload(
        args.name, args.file.read_bytes(), args.transcript, reserved, "file"
    )
    heard = None
    if transcript is None:
        heard = _transcribe(settings, aliases, audio)
    voice = store.add(
        name,
        audio,
        transcript=heard.text if heard else transcript,
        timed_transcript=heard.timed if heard else (),
        transcribed_by=settings.voice_transcription_model if heard else None,
        model=args.model,
        shared=args.shared,
    )
    print(f"{voice.id} {voice.name} ({voice.duration:.1f} s)")
    if heard is not None:
        print(f"transcript ({voice.transcribed_by}): {heard.text}")
    return 0


def _transcribe(settings: Settings, aliases: Collection[str], audio: Any) -> Any:
    """The recording's transcript from ``voice_transcription_model``, run here; None (and
    why, on stderr) when there is none."""
    from bragi.backends.protocol import ModelKind, SpeechToText
    from bragi.cli.local import with_local_engine
    from bragi.errors import BragiError
    from bragi.voices.transcribe import transcribe_reference

    alias = settings.voice_transcription_model
    if alias is None or alias not in aliases:
        why = "voice_transcription_model is not set" if alias is None else f"no model {alias!r}"
        print(f"bragi: stored without a transcript ({why})", file=sys.stderr)
        return None

    def work(engine: object) -> Any:
        assert isinstance(engine, SpeechToText)
        return transcribe_reference(engine, audio)

    try:
        return with_local_engine(settings, alias, ModelKind.STT, work)
    except BragiError as exc:
        print(f"bragi: stored without a transcript ({exc.message})", file=sys.stderr)
        return None


def _remove(args: argparse.Namespace) -> int:
    voice = VoiceStore.for_settings(_settings(args)).delete(args.voice)
    print(f"deleted {voice.id} {voice.name}")
    return 0
