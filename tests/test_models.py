"""Model manager behaviour: memory freed by the TTL's unload and --download-only on the real
server; background and single-flight loads, failures, unload during a decode on the server in
process over a fake backend (tests/inprocess.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import psutil
import pytest
from wyoming.asr import Transcribe

from .harness import ServerProcess, clip, eventually, eventually_async, free_port, words
from .http_helpers import SHORT, multipart
from .inprocess import FakeBackend, InProcess, serving, wait_running
from .wyoming_client import load_pcm16, transcribe

MB = 1024 * 1024
UNLOAD = "/v1/model/unload"


def model_state(server: ServerProcess, name: str) -> dict:
    return next(m for m in server.health()["models"] if m["name"] == name)


def wait_state(server: ServerProcess, name: str, state: str, timeout: float = 30) -> dict:
    def reached() -> dict | None:
        status = model_state(server, name)
        return status if status["state"] == state else None

    return eventually(reached, timeout, interval=0.1, what=f"{name} {state}")


def rss(server: ServerProcess) -> int:
    assert server.proc is not None
    return int(psutil.Process(server.proc.pid).memory_info().rss)


async def test_ttl_unloads_frees_memory_and_reloads(start_server) -> None:
    srv: ServerProcess = start_server("-m", "base", "--ttl", "2", "--no-zeroconf")
    pcm = load_pcm16(clip("speech_recognition/english.wav"))
    loaded = wait_state(srv, "base", "loaded", 120)
    assert loaded["ttl"] == 2 and loaded["loads"] == 1
    unloaded = wait_state(srv, "base", "unloaded", 15)
    assert unloaded["seconds_until_unload"] is None

    # A first use warms what every process keeps after its first decode (thread pools, scratch
    # buffers); from then on, each load and unload must return RSS to where it was.
    event = await transcribe("127.0.0.1", srv.wyoming_port, pcm)
    assert event.type == "transcript" and words(event.data["text"])
    wait_state(srv, "base", "unloaded", 15)
    time.sleep(0.3)
    before = rss(srv)

    event = await transcribe("127.0.0.1", srv.wyoming_port, pcm)
    assert event.type == "transcript" and words(event.data["text"])
    status = model_state(srv, "base")
    assert status["state"] == "loaded" and status["loads"] == 3
    assert 0 < status["seconds_until_unload"] <= 2
    assert status["last_used"] is not None
    with_model = rss(srv)
    assert with_model - before > 40 * MB, "loading base should take memory"

    wait_state(srv, "base", "unloaded", 15)
    time.sleep(0.3)
    after = rss(srv)
    assert after - before < 40 * MB, (before // MB, with_model // MB, after // MB)

    event = await transcribe("127.0.0.1", srv.wyoming_port, pcm)
    assert event.type == "transcript" and model_state(srv, "base")["loads"] == 4


async def state_of(srv: InProcess, name: str) -> dict:
    return next(m for m in (await srv.health())["models"] if m["name"] == name)


async def reaches(srv: InProcess, name: str, state: str, timeout: float = 10) -> dict:
    async def reached() -> dict | None:
        status = await state_of(srv, name)
        return status if status["state"] == state else None

    return await eventually_async(reached, timeout, interval=0.01, what=f"{name} {state}")


async def test_background_load_and_single_flight() -> None:
    """Ports open while models load (in process, the fake's load held until the test lets it
    go); racing requests for an unloaded model share one load."""
    backend = FakeBackend(text=" One, two, three.")
    backend.release.set()
    async with serving("-m", "tiny.en", "--ttl", "1", backend=backend) as srv:
        assert (await state_of(srv, "tiny.en"))["state"] == "loading"  # answered meanwhile
        backend.gate.set()
        await reaches(srv, "tiny.en", "loaded")
        await reaches(srv, "tiny.en", "unloaded", 10)
        loads = (await state_of(srv, "tiny.en"))["loads"]
        backend.gate.clear()  # the next load waits: every request arrives during it
        pcm = load_pcm16(clip("speech_recognition/english.wav"))
        racing = [
            asyncio.create_task(transcribe("127.0.0.1", srv.wyoming_port, pcm)) for _ in range(3)
        ]
        await reaches(srv, "tiny.en", "loading")
        backend.gate.set()
        results = await asyncio.gather(*racing)
        assert all(r.type == "transcript" and r.data["text"] == "One, two, three." for r in results)
        assert (await state_of(srv, "tiny.en"))["loads"] == loads + 1
        assert backend.loads == ["tiny.en", "tiny.en"]


async def test_failed_load_is_reported_and_retried() -> None:
    """In process, a load that fails (tests/test_faults.py breaks real model files)."""
    backend = FakeBackend(fail={"tiny.en"}, text=" One, two, three.")
    backend.release.set()
    backend.gate.set()
    async with serving("-m", "tiny.en", backend=backend) as srv:
        status = await reaches(srv, "tiny.en", "error")
        assert status["error"] == "no weights for tiny.en"
        assert (await srv.health())["status"] == "degraded"

        pcm = load_pcm16(clip("speech_recognition/english.wav"))
        event = await transcribe("127.0.0.1", srv.wyoming_port, pcm)
        assert event.type == "error" and "could not be loaded" in event.data["text"]

        backend.fail.clear()
        event = await transcribe(
            "127.0.0.1", srv.wyoming_port, pcm, transcribe=Transcribe(name="tiny.en")
        )
        assert event.type == "transcript" and event.data["text"] == "One, two, three."
        assert (await state_of(srv, "tiny.en"))["state"] == "loaded"


async def test_preload_opens_ports_after_loading() -> None:
    """In process, the fake's load held until the test lets it go: no port is open before it."""
    backend = FakeBackend()
    backend.release.set()
    ports = (free_port(), free_port())
    first: list[dict] = []

    async def run() -> None:
        async with serving("-m", "tiny.en", "--preload", backend=backend, ports=ports) as srv:
            first.append(await srv.health())

    server = asyncio.create_task(run())
    # The load has begun (the loader waits at the fake's gate): both ports still refuse.
    await eventually_async(
        lambda: backend.gate_waiting, 10, interval=0.01, what="the load waiting for its gate"
    )
    for port in ports:
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
    backend.gate.set()
    await asyncio.wait_for(server, 10)
    # The first answer /health ever gives already shows the model loaded.
    assert first[0]["models"][0]["state"] == "loaded"


@pytest.mark.parametrize("model", ["no-such-model", "/nonexistent/model/dir"])
def test_download_only_unknown_model_fails_clearly(model: str) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "wyoming_whisper", "--download-only", "-m", model],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert model in proc.stderr and "Traceback" not in proc.stderr


def test_download_only_assembles_packs(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wyoming_whisper",
            "--download-only",
            "-m",
            "tiny.en",
            "-m",
            "base",
            "--cache-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "packs" / "base" / "model.bin").is_file()
    assert not [p for p in (tmp_path / "packs").iterdir() if p.name.startswith(".")]


async def test_unload_while_decoding_waits_for_the_answer() -> None:
    """An unload asked during a decode loses nothing: the model goes once the answer is out (in
    process, the decode held until the test lets it go)."""
    async with serving("-m", "tiny.en", "--preload", "--ttl", "0") as srv:
        srv.backend.text = " The whole answer."
        srv.backend.hold()
        async with aiohttp.ClientSession() as session:
            body, ctype = multipart({"model": "whisper-1"}, clip(SHORT).read_bytes())
            url = srv.url + "/v1/audio/transcriptions"
            headers = {"Content-Type": ctype}
            pending = asyncio.create_task(session.post(url, data=body, headers=headers))
            await wait_running(srv)
            assert (await state_of(srv, "tiny.en"))["active_requests"] == 1
            async with session.post(srv.url + UNLOAD, json={"model": "tiny.en"}) as resp:
                reply = await resp.json()
            assert reply["unloaded"] == [] and reply["was_loaded"] is False, reply
            status = await state_of(srv, "tiny.en")
            assert status["unload_pending"] is True and status["state"] == "loaded", status
            assert not srv.backend.made[0].unloaded
            srv.backend.let_go()
            resp = await asyncio.wait_for(pending, 10)
            assert resp.status == 200 and (await resp.json())["text"] == "The whole answer."
            status = await reaches(srv, "tiny.en", "unloaded")
            assert status["unload_pending"] is False and status["loaded"] is False
            await eventually_async(  # its memory freed on the loader thread, after the state
                lambda: srv.backend.made[0].unloaded, 10, interval=0.01, what="tiny.en freed"
            )
            # The next request loads it again.
            async with session.post(url, data=body, headers=headers) as resp:
                assert resp.status == 200
        assert (await state_of(srv, "tiny.en"))["loads"] == 2
