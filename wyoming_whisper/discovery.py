"""Announcing the Wyoming service: mDNS (zeroconf) for Home Assistant's auto-discovery, and the
Supervisor's discovery API when running as a Home Assistant add-on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid

import aiohttp
from zeroconf import Error as ZeroconfError
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
        except (OSError, ZeroconfError) as err:  # the network's fault; a bug stays a bug
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


class SupervisorDiscovery:
    """Tells Home Assistant (through the Supervisor) where this add-on's Wyoming server is.

    The Supervisor may still be starting when the add-on is, so a failed POST is retried with
    exponential back-off (``first_delay`` doubling up to ``max_delay``) until it is accepted.
    A 4xx answer (a bad token, discovery not allowed in config.yaml) will not change by retrying
    and ends the attempt with one error line.
    """

    def __init__(
        self,
        supervisor_url: str,
        token: str,
        port: int,
        host: str | None = None,
        *,
        first_delay: float = 1.0,
        max_delay: float = 60.0,
    ) -> None:
        self.url = supervisor_url.rstrip("/") + "/discovery"
        self.token = token
        # Home Assistant reaches an add-on by the add-on's own hostname on the internal network.
        self.host = host or socket.gethostname()
        self.port = port
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._task: asyncio.Task[bool] | None = None

    @property
    def message(self) -> dict[str, object]:
        return {"service": "wyoming", "config": {"uri": f"tcp://{self.host}:{self.port}"}}

    def start(self) -> None:
        """Send in the background; start-up does not wait for the Supervisor."""
        self._task = asyncio.get_running_loop().create_task(self.send())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def send(self) -> bool:
        """POST the discovery message until accepted; False when the Supervisor refuses it."""
        delay = self.first_delay
        headers = {"Authorization": f"Bearer {self.token}"}
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    async with session.post(self.url, json=self.message, headers=headers) as resp:
                        if resp.status < 300:
                            _LOGGER.info(
                                "Sent discovery to Home Assistant: %s", self.message["config"]
                            )
                            return True
                        body = (await resp.text())[:200]
                        if 400 <= resp.status < 500:
                            _LOGGER.error(
                                "Supervisor refused discovery (HTTP %d: %s); add the Wyoming "
                                "integration by hand (host %s, port %d)",
                                resp.status,
                                body,
                                self.host,
                                self.port,
                            )
                            return False
                        problem = f"HTTP {resp.status}: {body}"
                except (TimeoutError, aiohttp.ClientError, OSError) as err:
                    problem = f"{err.__class__.__name__}: {err}"
                _LOGGER.warning(
                    "Supervisor not reachable for discovery (%s); retrying in %.0f s",
                    problem,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay)
