"""``bragi speak "text" -o out.mp3``: run a text-to-speech model here, no server needed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = commands.add_parser(
        "speak",
        help="synthesize speech locally",
        description="Speak TEXT (or standard input) with a configured TTS model, in this process.",
    )
    common(parser)
    parser.add_argument("text", nargs="?", help="text to speak (default: read standard input)")
    parser.add_argument("-o", "--output", type=Path, help="output file (default: standard output)")
    parser.add_argument("--model", help="model alias (default: the first TTS model)")
    parser.add_argument(
        "--voice", default="alloy", help="engine voice, OpenAI voice name, or cloned voice"
    )
    parser.add_argument("--language", help="for engines that speak several, e.g. de")
    parser.add_argument(
        "--instructions",
        help="how to speak, or the voice itself, for models that follow instructions",
    )
    parser.add_argument(
        "--format",
        choices=["mp3", "opus", "aac", "flac", "wav", "pcm"],
        help="default: from the output file's extension, else mp3",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="0.25 to 4.0")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from bragi.audio import OUTPUT_FORMATS
    from bragi.audio.speech_encoder import SpeechEncoder
    from bragi.backends.protocol import Engine, ModelKind, TextToSpeech
    from bragi.cli.common import settings_from_args
    from bragi.cli.local import default_alias, with_local_engine
    from bragi.errors import InvalidRequestError
    from bragi.speech import synthesis_plan
    from bragi.voices import VoiceStore
    from bragi.voices.choose import choose_voice

    text = args.text if args.text is not None else sys.stdin.read()
    if not text.strip():
        raise InvalidRequestError("nothing to speak: give TEXT or pipe it on standard input")
    if not 0.25 <= args.speed <= 4.0:
        raise InvalidRequestError("--speed must be between 0.25 and 4.0")
    suffix = args.output.suffix.lstrip(".").lower() if args.output else ""
    fmt = args.format or (suffix if suffix in OUTPUT_FORMATS else "mp3")
    settings = settings_from_args(args)
    alias = args.model or default_alias(settings, ModelKind.TTS)

    def work(engine: Engine) -> bytes:
        assert isinstance(engine, TextToSpeech)
        store = VoiceStore.for_settings(settings)
        voice, reference = choose_voice(
            args.voice, alias, engine, settings.voices, store, lambda: _cloners(settings)
        )
        job, tempo = synthesis_plan(
            text, voice, args.speed, engine, reference, args.language, args.instructions
        )
        encoder = SpeechEncoder(fmt, engine.capabilities.sample_rate, tempo)
        pieces = [encoder.feed(chunk) for chunk in engine.synthesize(job)]
        pieces.append(encoder.finish())
        return b"".join(pieces)

    audio = with_local_engine(settings, alias, ModelKind.TTS, work)
    if args.output is None:
        sys.stdout.buffer.write(audio)
    else:
        args.output.write_bytes(audio)
        print(f"wrote {args.output} ({fmt}, {len(audio)} bytes)", file=sys.stderr)
    return 0


def _cloners(settings: Any) -> list[str]:
    """The configured models that can speak in a cloned voice, loaded or not."""
    from bragi.backends.registry import BackendRegistry
    from bragi.models.capabilities import models_that_can
    from bragi.models.configure import build_manager

    registry = BackendRegistry.from_entry_points()
    return models_that_can(build_manager(settings, registry).models(), "cloning", registry)
