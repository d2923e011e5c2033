"""``bragi serve``."""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bragi.errors import ConfigError

if TYPE_CHECKING:
    from bragi.config import Settings

__all__ = ["EXIT_WITHIN", "REQUESTS_GRACE", "check_exposure", "register"]

#: Seconds requests in flight get to finish once the server is asked to stop.
REQUESTS_GRACE = 10
#: The longest ``bragi serve`` takes to exit after SIGTERM or Ctrl-C: the requests'
#: grace, then the model manager's stop (downloads aborted, engines closed in parallel,
#: workers still running killed). Kubernetes' ``terminationGracePeriodSeconds`` (30 in
#: deploy/kubernetes) must be longer; a test checks that it is.
EXIT_WITHIN = REQUESTS_GRACE + 15 + 2  # STOP_TIMEOUT and the kill's grace (models.manager)


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = commands.add_parser(
        "serve", help="run the server", description="Run the OpenAI-compatible speech server."
    )
    common(parser)
    parser.add_argument("--host", help="address to listen on ($BRAGI_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port ($BRAGI_PORT, default 8000)")
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        default=None,
        help="serve without API keys (auth: disabled) on a non-loopback address "
        "($BRAGI_INSECURE_NO_AUTH)",
    )
    parser.set_defaults(handler=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_exposure(settings: Settings) -> None:
    """Refuse to serve without keys on the network unless asked to in so many words."""
    if settings.auth_enabled or is_loopback(settings.host) or settings.insecure_no_auth:
        return
    raise ConfigError(
        f"auth is disabled and host is {settings.host}: anyone who reaches the port could "
        "use and administer this server. Listen on 127.0.0.1, enable auth, or accept it "
        "with --insecure-no-auth (BRAGI_INSECURE_NO_AUTH=1)."
    )


def run(args: argparse.Namespace) -> int:
    # CTranslate2's OpenMP threads otherwise spin at every barrier: with two requests in
    # one process, or anything else on the cores, that burned half the server's CPU
    # (docs/benchmarks.md, P2). Set before anything imports ctranslate2; a user's own
    # setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import uvicorn

    from bragi.api import create_app
    from bragi.backends.registry import BackendRegistry
    from bragi.cli.common import configure_logging, settings_from_args
    from bragi.models.configure import build_manager

    settings = settings_from_args(
        args, host=args.host, port=args.port, insecure_no_auth=args.insecure_no_auth
    )
    check_exposure(settings)
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
        timeout_graceful_shutdown=REQUESTS_GRACE,
    )
    return 0
