"""mDNS advertisement, browsed on loopback only (nothing leaves this machine)."""

from __future__ import annotations

import asyncio
import uuid

from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from wyoming_whisper.discovery import SERVICE_TYPE

from .harness import ServerProcess


async def browse(name: str, timeout: float) -> AsyncServiceInfo | None:
    """Look for ``name`` on 127.0.0.1; None if it does not answer within ``timeout``."""
    aiozc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    found: asyncio.Event = asyncio.Event()

    def on_change(zeroconf, service_type, name: str, state_change) -> None:  # type: ignore[no-untyped-def]
        if state_change is ServiceStateChange.Added and name.startswith(wanted):
            found.set()

    wanted = f"{name}."
    browser = AsyncServiceBrowser(aiozc.zeroconf, SERVICE_TYPE, handlers=[on_change])
    try:
        await asyncio.wait_for(found.wait(), timeout)
    except TimeoutError:
        return None
    finally:
        await browser.async_cancel()
    try:
        info = AsyncServiceInfo(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}")
        if await info.async_request(aiozc.zeroconf, 3000):
            return info
        return None
    finally:
        await aiozc.async_close()


async def test_advertised_on_loopback_and_gone_after_sigterm(start_server) -> None:
    name = f"test-{uuid.uuid4().hex[:8]}"
    srv: ServerProcess = start_server("-m", "tiny.en", "--zeroconf-name", name)
    info = await browse(name, 10)
    assert info is not None, srv.log()
    assert info.port == srv.wyoming_port
    assert "127.0.0.1" in info.parsed_addresses()

    assert srv.stop() == 0
    # Unregistered on shutdown: a fresh browser no longer finds it.
    assert await browse(name, 3) is None


async def test_no_zeroconf_flag(start_server) -> None:
    name = f"test-{uuid.uuid4().hex[:8]}"
    start_server("-m", "tiny.en", "--no-zeroconf", "--zeroconf-name", name)
    assert await browse(name, 3) is None
