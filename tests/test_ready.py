"""GET /ready, what a load balancer asks, through one server's life (docs/scaling.md), on the
server in process over a fake backend (tests/inprocess.py) whose load the test holds.

503 while the default model loads, 200 once loaded, 503 while its queue is full, and 503 at once
when the server is told to stop (what a SIGTERM does: ``Server.serve``; tests/test_shutdown.py
sends real signals to a real server) while an utterance that was still arriving and a request
sent during --shutdown-delay are both answered; then the server stops. It never needs the API key.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient

from wyoming_whisper.http.docs import build_spec

from .harness import clip, eventually_async, words
from .http_helpers import COUNT, multipart
from .inprocess import FakeBackend, InProcess, serving
from .test_openapi_responses import check
from .wyoming_client import load_pcm16, read_until

KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}
SPEC = build_spec()
CHUNK = 3200  # 0.1 s of 16-bit mono PCM at 16 kHz
ANSWER = " One, two, three."


async def ready(srv: InProcess) -> tuple[int, dict]:
    """/ready without a key, checked against the Ready schema of the OpenAPI document."""
    async with aiohttp.ClientSession() as session, session.get(srv.url + "/ready") as resp:
        status, headers, body = resp.status, dict(resp.headers), await resp.read()
    return status, check(SPEC, "/ready", "get", status, headers, body)


async def wait_for(srv: InProcess, reason: str, timeout: float = 30.0) -> tuple[int, dict]:
    async def reached() -> tuple[int, dict] | None:
        status, body = await ready(srv)
        return (status, body) if body["reason"] == reason else None

    return await eventually_async(reached, timeout, interval=0.02, what=f"/ready: {reason!r}")


async def refuses(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


Stalled = tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]


async def stalled_upload(srv: InProcess, audio: bytes) -> Stalled:
    """An upload that has sent its model field and the start of its file, then waits: admitted
    (a place in the queue) and not finished. Returns its connection and the bytes still due."""
    body, ctype = multipart({"model": "whisper-1"}, audio)
    # aiohttp reads a field ahead in chunks of up to 8 KiB before it yields the next part, and the
    # server admits when the file part begins: send 16 KiB of the file, then wait.
    cut = body.index(b"\r\n\r\n", body.index(b'name="file"')) + 4 + 16384
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    head = (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    writer.write(head + body[:cut])
    await writer.drain()
    return reader, writer, body[cut:]


async def post_with_key(srv: InProcess, audio: bytes) -> tuple[int, dict]:
    body, ctype = multipart({"model": "whisper-1"}, audio)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            srv.url + "/v1/audio/transcriptions",
            data=body,
            headers={**AUTH, "Content-Type": ctype},
        ) as resp,
    ):
        return resp.status, await resp.json()


async def test_ready_through_loading_serving_full_queue_and_drain() -> None:
    backend = FakeBackend(text=ANSWER)
    backend.release.set()  # decodes answer at once; the load waits until the gate opens
    flags = ("-m", "tiny.en", "--api-key", KEY, "--max-concurrency", "1", "--max-queue", "1")
    async with serving(
        *flags, "--shutdown-delay", "3", "--drain-seconds", "15", backend=backend
    ) as srv:
        # Alive (liveness answers 200) but not ready: the default model is still loading.
        assert (await srv.health())["models"][0]["loaded"] is False
        status, body = await ready(srv)
        assert (status, body["ready"], body["reason"]) == (503, False, "loading"), body
        backend.gate.set()
        status, body = await wait_for(srv, "ready")
        assert status == 200, body
        assert body == {
            "ready": True,
            "reason": "ready",
            "model": "tiny.en",
            "queue_depth": 0,
            "capacity": 2,
        }

        # A full queue (1 worker + 1 waiting): not ready, so a balancer sends the next one
        # elsewhere.
        audio = clip(COUNT).read_bytes()
        stalled = [await stalled_upload(srv, audio) for _ in range(2)]
        status, body = await wait_for(srv, "busy", timeout=10)
        assert (status, body["reason"], body["queue_depth"]) == (503, "busy", 2), body
        for _, writer, rest in stalled:
            writer.write(rest)
            await writer.drain()
        for reader, writer, _ in stalled:
            answer = await asyncio.wait_for(reader.read(), 60)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
            reply = json.loads(answer.split(b"\r\n\r\n", 1)[1])
            assert words(reply["text"]) == ["one", "two", "three"]
        assert (await wait_for(srv, "ready"))[0] == 200
        assert [round(d.seconds, 1) for d in backend.decodes] == [2.7, 2.7]  # the whole uploads

        # Told to stop while an utterance is still arriving (nothing admitted yet: it decodes at
        # the end).
        pcm = load_pcm16(clip("lhotse/2412-153948-0000.flac"))
        half = len(pcm) // 2 // CHUNK * CHUNK
        async with AsyncTcpClient("127.0.0.1", srv.wyoming_port) as client:
            await client.write_event(Transcribe().event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            for i in range(0, half, CHUNK):
                chunk = AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i : i + CHUNK])
                await client.write_event(chunk.event())
            signalled = time.monotonic()
            stopping = asyncio.create_task(srv.stop())
            status, body = await wait_for(srv, "draining", timeout=5)
            assert (status, body["ready"], body["reason"]) == (503, False, "draining"), body
            assert time.monotonic() - signalled < 1.0  # at once, not after the drain
            # What a balancer still sends before its health check notices is served.
            code, reply = await post_with_key(srv, audio)
            assert code == 200 and words(reply["text"]) == ["one", "two", "three"], reply
            # After the delay both ports close; the utterance still arriving is not cut off.
            await eventually_async(
                lambda: all_refuse(srv),
                signalled + 3 + 10 - time.monotonic(),
                interval=0.1,
                what="both ports closed after --shutdown-delay",
            )
            assert time.monotonic() - signalled >= 2.9
            assert not stopping.done()  # still draining: the utterance is owed its answer
            for i in range(half, len(pcm), CHUNK):
                chunk = AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i : i + CHUNK])
                await client.write_event(chunk.event())
            await client.write_event(AudioStop().event())
            events = await read_until(client, "transcript", timeout=60)
        assert events[-1].type == "transcript", events[-1]
        assert words(events[-1].data["text"]) == ["one", "two", "three"], events[-1].data
        final = backend.decodes[-1]  # the whole utterance, both halves, reached the model
        assert abs(final.seconds - len(pcm) / 32000) < 1.0, (final.seconds, len(pcm) / 32000)
        await asyncio.wait_for(stopping, 30)
        assert "Traceback" not in srv.log()


async def all_refuse(srv: InProcess) -> bool:
    return await refuses(srv.port) and await refuses(srv.wyoming_port)
