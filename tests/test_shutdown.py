"""SIGTERM/SIGINT: stop accepting, finish in-flight work, exit 0."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Awaitable, Callable

import aiohttp
import psutil
import pytest

from .harness import ServerProcess, clip, eventually_async, words
from .http_helpers import multipart, ws_transcribe
from .wyoming_client import load_pcm16, transcribe


async def _wyoming(srv: ServerProcess, pcm: bytes, audio: bytes) -> str:
    event = await transcribe("127.0.0.1", srv.wyoming_port, pcm)
    assert event.type == "transcript", event
    return str(event.data["text"])


async def _websocket(srv: ServerProcess, pcm: bytes, audio: bytes) -> str:
    async with aiohttp.ClientSession() as session:
        reply = await ws_transcribe(session, srv.url, pcm)
    assert reply["type"] == "final", reply
    return str(reply["text"])


async def _http(srv: ServerProcess, pcm: bytes, audio: bytes) -> str:
    body, ctype = multipart({"model": "whisper-1"}, audio, filename="speech.flac")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            srv.url + "/v1/audio/transcriptions", data=body, headers={"Content-Type": ctype}
        ) as resp,
    ):
        reply = await resp.json()
    assert resp.status == 200, reply
    return str(reply["text"])


@pytest.mark.parametrize(
    ("sig", "door"),
    [
        (signal.SIGTERM, _wyoming),
        (signal.SIGINT, _wyoming),
        (signal.SIGTERM, _websocket),
        (signal.SIGTERM, _http),
    ],
    ids=["sigterm-wyoming", "sigint-wyoming", "sigterm-websocket", "sigterm-http"],
)
async def test_signal_lets_in_flight_work_finish(
    start_server, sig: signal.Signals, door: Callable[[ServerProcess, bytes, bytes], Awaitable[str]]
) -> None:
    """A stop signal during a decode: the client still gets its whole answer, then exit 0."""
    srv: ServerProcess = start_server("-m", "tiny.en", "--preload", "--no-zeroconf")
    assert srv.proc is not None
    assert psutil.Process(srv.proc.pid).children(recursive=True) == []
    path = clip("lhotse/2412-153948-0000.flac")
    pending = asyncio.create_task(door(srv, load_pcm16(path), path.read_bytes()))
    # Wait until the request is being decoded, then ask the server to stop.

    def decoding() -> bool:
        if pending.done():  # pytest.fail, not assert: eventually retries a failed assert
            pytest.fail(f"answered before the signal: {pending.result()!r}")
        return any(m["active_requests"] for m in srv.health()["models"])

    await eventually_async(decoding, 30, interval=0.02, what="the request decoding")
    srv.proc.send_signal(sig)
    text = await asyncio.wait_for(pending, 30)
    assert len(words(text)) > 10, text
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
