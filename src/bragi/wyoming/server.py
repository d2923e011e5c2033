"""The Wyoming listener that ``bragi serve`` runs beside the HTTP API, in the same event
loop: the same model manager (one load per model, shared keep-alive and limits), the
same voice store, the same metrics.

It opens its port before the models finish loading and answers ``describe`` from a
snapshot in memory, so Home Assistant's one-second ``describe`` works at once. The
protocol has no authentication: the start-up log says so, loudly.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import socket

from bragi.config import Settings
from bragi.errors import BragiError, ConfigError
from bragi.metrics import Metrics
from bragi.models.manager import ModelManager
from bragi.voices import VoiceStore
from bragi.wyoming import choose
from bragi.wyoming.catalog import Catalog
from bragi.wyoming.choose import Chooser
from bragi.wyoming.connection import Connection, Services
from bragi.wyoming.framing import FrameLimits
from bragi.wyoming.zeroconf import Announcer, announced_address, service_name

__all__ = ["WyomingListener", "check_settings"]

log = logging.getLogger(__name__)


def check_settings(settings: Settings, manager: ModelManager) -> None:
    """Refuse, at start-up, a ``wyoming:`` section that cannot work (ConfigError)."""
    config = settings.wyoming
    choose.check_settings(config, manager)
    if config.zeroconf:
        if importlib.util.find_spec("zeroconf") is None:
            raise ConfigError(
                "wyoming.zeroconf needs the zeroconf package: pip install 'bragi[zeroconf]'"
            )
        if config.zeroconf_address:
            announced_address(config.host or settings.host, config.zeroconf_address)


class WyomingListener:
    def __init__(
        self, settings: Settings, manager: ModelManager, voices: VoiceStore, metrics: Metrics
    ):
        self.settings = settings
        self.config = settings.wyoming
        self.host = self.config.host or settings.host
        catalog = Catalog(manager, voices, self.config)
        self.services = Services(
            settings, manager, catalog, Chooser(catalog, settings), metrics, FrameLimits()
        )
        self._socket: socket.socket | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._announcer: Announcer | None = None
        self._announcing: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self.config.port
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def bind(self) -> None:
        """Take the port (before the event loop runs, in ``bragi serve``), so a port in
        use stops start-up with one line."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            self._socket = socket.create_server((self.host, self.config.port), family=family)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise BragiError(
                f"cannot listen for Wyoming clients on {self.host}:{self.config.port}: {reason}"
            ) from None

    async def start(self) -> None:
        await self.services.catalog.current(wait=30.0)  # the first snapshot
        if self._socket is None:
            self.bind()
        self._server = await asyncio.start_server(
            self._serve, sock=self._socket, limit=self.services.limits.header
        )
        log.warning(
            "\n\n    Wyoming protocol (Home Assistant) on tcp://%s:%d\n"
            "    The Wyoming protocol has NO AUTHENTICATION: whoever reaches this port can\n"
            "    use every model, without an API key. Expose it to trusted networks only.\n",
            self.host,
            self.port,
        )
        if self.config.zeroconf:
            self._announcing = asyncio.create_task(self._announce())

    async def _announce(self) -> None:
        address = announced_address(self.host, self.config.zeroconf_address)
        if address is None:
            return
        announcer = Announcer(service_name(self.config.zeroconf_name), address, self.port)
        try:
            await announcer.start()
        except Exception as exc:  # the network refuses it: Bragi serves on, undiscovered
            log.error("zeroconf: announcing %s failed: %s", announcer.name, exc)
            await announcer.stop()
            return
        self._announcer = announcer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await Connection(reader, writer, self.services).serve()
        finally:
            self._connections.discard(task)

    async def stop(self) -> None:
        if self._announcing is not None:
            self._announcing.cancel()
            await asyncio.gather(self._announcing, return_exceptions=True)
        if self._announcer is not None:
            await self._announcer.stop()
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        await self.services.catalog.close()
