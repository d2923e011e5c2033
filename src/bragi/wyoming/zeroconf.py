"""Announcing the Wyoming port on the local network (mDNS ``_wyoming._tcp``), so Home
Assistant finds Bragi by itself. Needs the ``zeroconf`` package (``bragi[zeroconf]``).

Home Assistant drops an announcement whose only address is unspecified (``0.0.0.0``)
or link-local, so the address announced is a real one: ``wyoming.zeroconf_address``
when set, else the listening host when it is one address, else (listening on all
addresses) the address of the interface that routes to the mDNS group. The
announcement goes out on that address's interface only.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import TYPE_CHECKING

from bragi.errors import ConfigError

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

__all__ = ["SERVICE_TYPE", "Announcer", "announced_address", "service_name"]

log = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
_MDNS_GROUP = ("224.0.0.251", 5353)
_MAX_LABEL = 63


def service_name(configured: str | None) -> str:
    """The DNS-SD instance name: the configured one, else ``bragi-<hostname>``."""
    name = configured or f"bragi-{socket.gethostname().split('.')[0]}"
    return name.replace(".", "-")[:_MAX_LABEL]


def _usable(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not (ip.is_unspecified or ip.is_link_local or ip.is_loopback)


def _routed_address() -> str | None:
    """This machine's address toward the mDNS group (a UDP "connect" sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(_MDNS_GROUP)
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return address if _usable(address) else None


def announced_address(host: str, explicit: str | None) -> str | None:
    """The address to announce; None (with the reason logged) when there is none."""
    if explicit:
        try:
            ip = ipaddress.ip_address(explicit)
        except ValueError:
            raise ConfigError(
                f"invalid configuration: wyoming.zeroconf_address: not an IP address "
                f"(got {explicit!r})"
            ) from None
        if ip.is_unspecified or ip.is_link_local:
            raise ConfigError(
                "invalid configuration: wyoming.zeroconf_address: Home Assistant ignores "
                f"unspecified and link-local addresses (got {explicit!r})"
            )
        return explicit
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:  # a host name: what it resolves to here
        try:
            found = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            found = []
        usable = [str(entry[4][0]) for entry in found if _usable(str(entry[4][0]))]
        if usable:
            return usable[0]
        log.warning("zeroconf: %s is not an address other machines reach; not announcing", host)
        return None
    if ip.is_unspecified:
        address = _routed_address()
        if address is None:
            log.warning(
                "zeroconf: found no address of this machine on a network; not announcing "
                "(set wyoming.zeroconf_address)"
            )
        return address
    if not _usable(host):
        log.warning(
            "zeroconf: the Wyoming port listens on %s only, which other machines cannot "
            "reach; not announcing (set wyoming.host, or wyoming.zeroconf_address)",
            host,
        )
        return None
    return host


class Announcer:
    """One ``_wyoming._tcp`` service, registered until :meth:`stop`."""

    def __init__(self, name: str, address: str, port: int):
        self.name = name
        self.address = address
        self.port = port
        self._zeroconf: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None

    async def start(self) -> None:
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

        self._zeroconf = AsyncZeroconf(interfaces=[self.address])
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self.name}.{SERVICE_TYPE}",
            port=self.port,
            parsed_addresses=[self.address],
            server=f"{self.name}.local.",
        )
        await self._zeroconf.async_register_service(self._info)
        log.info("zeroconf: announced %s at %s:%d", self.name, self.address, self.port)

    async def stop(self) -> None:
        if self._zeroconf is None:
            return
        if self._info is not None:
            await self._zeroconf.async_unregister_service(self._info)
        await self._zeroconf.async_close()
        self._zeroconf = None
