"""``bragi``: argument parsing and the one place errors become exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bragi import __version__
from bragi.cli import backend, keys, models, serve, speak, transcribe, voices
from bragi.cli.common import common_arguments, configure_logging, settings_from_args
from bragi.errors import BragiError, ConfigError

# settings_from_args and configure_logging are re-exported for commands written against
# this module; commands import them from bragi.cli.common (main imports every command).
__all__ = ["configure_logging", "main", "settings_from_args"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bragi",
        description="Self-hosted speech server: open STT and TTS engines behind the OpenAI "
        "Audio API.",
    )
    parser.add_argument("--version", action="version", version=f"bragi {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (serve, transcribe, speak, keys, voices, models, backend):
        module.register(commands, common_arguments)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        print(f"bragi: {exc.message}", file=sys.stderr)
        return 2
    except BragiError as exc:
        print(f"bragi: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:  # a directory that cannot be written, a file that cannot be read
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"bragi: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
