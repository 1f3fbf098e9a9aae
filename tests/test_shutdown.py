"""SIGTERM/SIGINT: stop accepting, finish in-flight work, exit 0."""

from __future__ import annotations

import asyncio
import signal
import socket
import time

import psutil
import pytest

from .conftest import ServerProcess, clip, words
from .wyoming_client import load_pcm16, transcribe


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_lets_in_flight_work_finish(start_server, sig: signal.Signals) -> None:
    srv: ServerProcess = start_server("-m", "tiny.en", "--preload", "--no-zeroconf")
    assert srv.proc is not None
    assert psutil.Process(srv.proc.pid).children(recursive=True) == []
    pcm = load_pcm16(clip("lhotse/2412-153948-0000.flac"))
    pending = asyncio.create_task(transcribe("127.0.0.1", srv.wyoming_port, pcm))
    # Wait until the request is being decoded, then ask the server to stop.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(m["active_requests"] for m in srv.health()["models"]):
            break
        await asyncio.sleep(0.02)
    srv.proc.send_signal(sig)
    event = await asyncio.wait_for(pending, 30)
    assert event.type == "transcript" and len(words(event.data["text"])) > 10
    code = await asyncio.get_running_loop().run_in_executor(None, srv.proc.wait, 20)
    assert code == 0, srv.log()
    assert "Traceback" not in srv.log()
    # The ports are closed.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", srv.port), timeout=1):
        pass


def test_idle_server_exits_quickly(start_server) -> None:
    srv: ServerProcess = start_server("-m", "tiny.en", "--no-zeroconf")
    started = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - started < 5
