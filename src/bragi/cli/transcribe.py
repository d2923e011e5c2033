"""``bragi transcribe FILE``: run a speech-to-text model here, no server needed."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["register"]

FORMATS = ["text", "json", "verbose_json", "srt", "vtt"]


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = commands.add_parser(
        "transcribe",
        help="transcribe an audio file locally",
        description="Transcribe (or translate) an audio file with a configured model, in this "
        "process.",
    )
    common(parser)
    parser.add_argument("file", type=Path, help="audio file (any format FFmpeg decodes)")
    parser.add_argument("--model", help="model alias (default: the first STT model)")
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("--language", help="ISO-639-1 code; detected when absent")
    parser.add_argument("--translate", action="store_true", help="translate to English")
    parser.add_argument("--words", action="store_true", help="word timestamps (verbose_json)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from bragi.audio import decode_audio
    from bragi.backends.protocol import Engine, ModelKind, SpeechToText, TranscribeOptions
    from bragi.cli.common import settings_from_args
    from bragi.cli.local import default_alias, with_local_engine
    from bragi.errors import InvalidRequestError
    from bragi.languages import language_code
    from bragi.transcripts import render_transcript, start_transcription

    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {args.file}: {exc.strerror}") from None
    settings = settings_from_args(args)
    alias = args.model or default_alias(settings, ModelKind.STT)
    language = language_code(args.language) if args.language else None
    if args.language and language is None:
        raise InvalidRequestError(f"unknown language {args.language!r}")
    options = TranscribeOptions(
        task="translate" if args.translate else "transcribe",
        language=language,
        word_timestamps=args.words,
    )

    def work(engine: Engine) -> tuple[dict[str, Any] | str, str]:
        assert isinstance(engine, SpeechToText)
        audio = decode_audio(data, engine.capabilities.sample_rate)
        segments, info = start_transcription(engine, audio, options)
        return render_transcript(list(segments), info, args.format, options.task, args.words)

    body, _media_type = with_local_engine(settings, alias, ModelKind.STT, work)
    sys.stdout.write(json.dumps(body, indent=2) + "\n" if isinstance(body, dict) else body)
    return 0
