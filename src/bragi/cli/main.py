"""``bragi``: argument parsing and the one place errors become exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bragi import __version__
from bragi.cli import backend, keys, models, serve, speak, transcribe, voices
from bragi.config import Settings, load_settings
from bragi.datadir import make_private_dir
from bragi.errors import BragiError, ConfigError

__all__ = ["main", "settings_from_args"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        help="YAML config file (default: $BRAGI_CONFIG, else /etc/bragi/config.yaml when present)",
    )
    parser.add_argument("--data-dir", type=Path, help="models and keys live here ($BRAGI_DATA_DIR)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="$BRAGI_DEVICE")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def settings_from_args(args: argparse.Namespace, **extra: object) -> Settings:
    settings = load_settings(
        args.config,
        data_dir=args.data_dir,
        device=args.device,
        log_level=args.log_level,
        **extra,
    )
    make_private_dir(settings.data_dir)  # keys and voices: whoever creates it, 0700
    return settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bragi",
        description="Self-hosted speech server: open STT and TTS engines behind the OpenAI "
        "Audio API.",
    )
    parser.add_argument("--version", action="version", version=f"bragi {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (serve, transcribe, speak, keys, voices, models, backend):
        module.register(commands, _common)
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


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # The hub client's HTTP library logs every request at INFO; Bragi logs progress itself.
    for noisy in ("httpx", "httpx2", "httpcore", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
