"""What every ``bragi`` command shares: the common flags, settings from them, logging.

Commands import this module, never :mod:`bragi.cli.main`, which imports every command.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bragi.config import Settings, load_settings

__all__ = ["common_arguments", "configure_logging", "settings_from_args"]


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        help="YAML config file (default: $BRAGI_CONFIG, else /etc/bragi/config.yaml when present)",
    )
    parser.add_argument("--data-dir", type=Path, help="models and keys live here ($BRAGI_DATA_DIR)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="$BRAGI_DEVICE")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def settings_from_args(args: argparse.Namespace, **extra: object) -> Settings:
    return load_settings(
        args.config,
        data_dir=args.data_dir,
        device=args.device,
        log_level=args.log_level,
        **extra,
    )


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # The hub client's HTTP library logs every request at INFO; Bragi logs progress itself.
    for noisy in ("httpx", "httpx2", "httpcore", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
