"""Announcing the Wyoming service: mDNS (zeroconf) for Home Assistant's auto-discovery."""

from __future__ import annotations

import logging
import socket
import uuid

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

_LOGGER = logging.getLogger(__name__)
SERVICE_TYPE = "_wyoming._tcp.local."
_MDNS_GROUP = "224.0.0.251"


def default_service_name() -> str:
    """A stable name per machine: the MAC address in hex, as the wyoming library does."""
    return f"{uuid.getnode():012x}"


def _outbound_address() -> str:
    """The address other machines reach us on (no packet is sent: UDP connect only routes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((_MDNS_GROUP, 1))
        return str(sock.getsockname()[0])


class ZeroconfAdvertiser:
    """Registers ``<name>._wyoming._tcp.local.``; bound to one address, advertises only there."""

    def __init__(self, port: int, host: str, name: str | None = None) -> None:
        self.port = port
        self.host = host
        self.name = name or default_service_name()
        self._aiozc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None

    async def start(self) -> bool:
        """Register the service; a failure is a warning, never a crash."""
        try:
            specific = self.host not in ("", "0.0.0.0", "::")
            address = self.host if specific else _outbound_address()
            aiozc = (
                AsyncZeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
                if specific
                else AsyncZeroconf(ip_version=IPVersion.V4Only)
            )
            self._aiozc = aiozc
            info = self._info = AsyncServiceInfo(
                SERVICE_TYPE,
                f"{self.name}.{SERVICE_TYPE}",
                addresses=[socket.inet_aton(address)],
                port=self.port,
                properties={"version": "1"},
            )
            await aiozc.async_register_service(info)
        except Exception as err:
            _LOGGER.warning(
                "Zeroconf advertisement failed (%s); Home Assistant will not "
                "discover this server, add it by host and port",
                err,
            )
            await self.stop()
            return False
        _LOGGER.info("Advertising %s on %s port %d", info.name, address, self.port)
        return True

    async def stop(self) -> None:
        aiozc, self._aiozc = self._aiozc, None
        if aiozc is None:
            return
        try:
            if self._info is not None:
                await aiozc.async_unregister_service(self._info)
        except Exception as err:
            _LOGGER.debug("Zeroconf unregister failed: %s", err)
        finally:
            await aiozc.async_close()
