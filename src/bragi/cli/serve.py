"""``bragi serve``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

__all__ = ["register"]


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = commands.add_parser(
        "serve", help="run the server", description="Run the OpenAI-compatible speech server."
    )
    common(parser)
    parser.add_argument("--host", help="address to listen on ($BRAGI_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port ($BRAGI_PORT, default 8000)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # CTranslate2's OpenMP threads otherwise spin at every barrier: with two requests in
    # one process, or anything else on the cores, that burned half the server's CPU
    # (docs/benchmarks.md, P2). Set before anything imports ctranslate2; a user's own
    # setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import uvicorn

    from bragi.api import create_app
    from bragi.backends.registry import BackendRegistry
    from bragi.cli.main import configure_logging, settings_from_args
    from bragi.models.configure import build_manager

    settings = settings_from_args(args, host=args.host, port=args.port)
    configure_logging(settings.log_level)
    registry = BackendRegistry.from_entry_points()
    manager = build_manager(settings, registry)  # config errors stop start-up here
    app = create_app(settings, registry=registry, manager=manager)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        access_log=settings.log_level == "debug",
        timeout_graceful_shutdown=10,
        # Room above realtime.max_event_mb, so a larger event gets an error event, not 1009.
        ws_max_size=2 * settings.realtime.max_event_bytes,
    )
    return 0
