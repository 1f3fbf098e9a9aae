"""Every hostile-input case of tests/test_hostile_*.py at once against one server with default
limits: a normal Wyoming transcription is still answered, right, while they run, and /health
answers within 250 ms throughout."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import wave
from collections.abc import Callable
from typing import Any

import aiohttp
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient

from .harness import ServerProcess, clip, words
from .hostile import HEALTH_BOUND_MS, Watch
from .http_helpers import SHORT, SHORT_READINGS, form_body
from .wyoming_client import load_pcm16, read_until, transcribe


def one_hertz_wav(body_bytes: int = 12_000) -> bytes:
    """A WAV whose header declares 1 Hz: each byte would become 16,000 samples."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(1)
        w.writeframes(bytes(range(256)) * (body_bytes // 256))
    return out.getvalue()


async def upload(
    http: aiohttp.ClientSession, url: str, parts: list[tuple[str, str | bytes, str | None]]
) -> int:
    body, ctype = form_body(parts)
    async with http.post(
        url + "/v1/audio/transcriptions", data=body, headers={"Content-Type": ctype}
    ) as resp:
        await resp.read()
        return resp.status


async def hostile_uploads(http: aiohttp.ClientSession, srv: ServerProcess) -> list[int]:
    """File reads through a playlist, 1 Hz decode bombs, and file-first uploads: two, so that
    with the six others they hold at most 8 of the default queue's 9 places even if all are in
    flight at once, and the normal request always has room (with five, a loaded CI machine had all
    eleven in flight and the normal request got a 503, a right answer, tested on its own in
    tests/test_reliability.py)."""
    target = clip(SHORT).resolve()
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{target}\n#EXT-X-ENDLIST\n"
    jobs = [
        upload(http, srv.url, [("model", "whisper-1", None), ("file", playlist.encode(), "x.m3u8")])
        for _ in range(3)
    ]
    jobs += [
        upload(http, srv.url, [("model", "whisper-1", None), ("file", one_hertz_wav(), "a.wav")])
        for _ in range(3)
    ]
    audio = clip(SHORT).read_bytes()
    jobs += [
        upload(http, srv.url, [("file", audio, "a.wav"), ("model", "whisper-1", None)])
        for _ in range(2)
    ]
    return list(await asyncio.gather(*jobs))


async def wyoming_bombs(srv: ServerProcess) -> list[str]:
    """A 4 MB chunk declared at 1 kHz, 8 bits, and lines of garbage: error events."""
    seen = []
    async with AsyncTcpClient("127.0.0.1", srv.wyoming_port) as client:
        await client.write_event(AudioStart(rate=1000, width=1, channels=1).event())
        await client.write_event(
            AudioChunk(rate=1000, width=1, channels=1, audio=bytes(4 << 20)).event()
        )
        seen += [e.type for e in await read_until(client, "transcript", timeout=30)]
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.wyoming_port)
    writer.write(b"x\n" * 500)
    await writer.drain()
    seen.append((await asyncio.wait_for(reader.readline(), 10)).decode()[:40])
    writer.close()
    return seen


async def realtime_bombs(http: aiohttp.ClientSession, srv: ServerProcess) -> list[Any]:
    """A 4 MiB G.711 append (524 s of audio, past the stream limit) and a message of deeply
    nested lists. The maximal 15 MiB append has its own test: reassembling and reading 20 MB of
    JSON can hold the loop for up to ~0.3 s by itself (docs/security.md)."""
    answers: list[Any] = []
    url = srv.url + "/v1/realtime?intent=transcription"
    async with http.ws_connect(url, max_msg_size=0) as ws:
        await ws.receive_json(timeout=10)  # session.created
        session = {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}
        await ws.send_json({"type": "session.update", "session": session})
        await ws.receive_json(timeout=10)
        audio = base64.b64encode(bytes(4 << 20)).decode()
        await ws.send_str(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        answers.append(await ws.receive(timeout=30))
    async with http.ws_connect(url, max_msg_size=0) as ws:
        await ws.receive_json(timeout=10)
        await ws.send_str('{"type": "session.update", "session": ' + "[" * 2_000_000)
        answers.append(await ws.receive(timeout=30))
    return [a.data if a.type == aiohttp.WSMsgType.TEXT else a.type for a in answers]


async def json_and_origin(http: aiohttp.ClientSession, srv: ServerProcess) -> list[int]:
    """A 50 MB JSON body to unload, and a cross-origin simple POST to unload."""
    body = b"[" * (50 << 20)
    statuses = []
    try:
        async with http.post(
            srv.url + "/v1/model/unload", data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            statuses.append(resp.status)
    except aiohttp.ClientError:
        statuses.append(0)  # refused before the body was read: the server closed the connection
    async with http.post(
        srv.url + "/v1/model/unload", headers={"Origin": "http://evil.example"}
    ) as resp:
        statuses.append(resp.status)
    return statuses


async def idle_connections(srv: ServerProcess, hold: asyncio.Event, opened: asyncio.Event) -> int:
    """100 idle Wyoming connections and 20 HTTP requests that never finish their headers, held
    until ``hold``; ``opened`` is set once they are all open and sent."""
    writers = []
    for _ in range(100):
        _, writer = await asyncio.open_connection("127.0.0.1", srv.wyoming_port)
        writers.append(writer)
    for _ in range(20):
        _, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n")
        writers.append(writer)
    await asyncio.gather(*(writer.drain() for writer in writers))
    opened.set()
    await hold.wait()
    for writer in writers:
        writer.close()
    return len(writers)


async def test_a_server_under_every_case_at_once_still_serves(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Every case at once, 100 idle Wyoming connections and 20 half-sent HTTP requests held
    throughout: a normal Wyoming transcription is answered, right."""
    srv = start_server("-m", "tiny.en", "--preload", "--no-zeroconf")
    pcm = load_pcm16(clip(SHORT))
    hold = asyncio.Event()
    rounds: list[tuple[Any, ...]] = []
    with Watch(srv) as watch:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            opened = asyncio.Event()
            idle = asyncio.create_task(idle_connections(srv, hold, opened))
            ready = asyncio.create_task(opened.wait())
            await asyncio.wait([idle, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
            assert opened.is_set(), idle  # (an error opening them ends ``idle`` first)
            for _ in range(1):
                attacks = asyncio.gather(
                    hostile_uploads(http, srv),
                    wyoming_bombs(srv),
                    realtime_bombs(http, srv),
                    json_and_origin(http, srv),
                    return_exceptions=True,
                )
                await asyncio.sleep(0.3)  # the attacks under way (a head start, not evidence)
                normal = await transcribe("127.0.0.1", srv.wyoming_port, pcm)
                rounds.append((normal, *await attacks))
            hold.set()
            await idle
    print("all at once:", watch.summary())
    assert watch.health_failures == 0 and watch.slowest_ms < HEALTH_BOUND_MS, watch.summary()
    for normal, uploads, wyoming, realtime, unload in rounds:
        assert normal.type == "transcript", normal
        assert words(normal.data["text"]) in SHORT_READINGS, normal.data
        assert not isinstance(uploads, BaseException), uploads
        assert all(s in (200, 400, 413, 503) for s in uploads), uploads
        assert all(s in (400, 413) for s in uploads[:6]), uploads  # never the server file's text
        assert not isinstance(wyoming, BaseException), wyoming
        assert wyoming[0] == "error" and "error" in wyoming[1], wyoming
        assert not isinstance(realtime, BaseException), realtime
        assert all("error" in str(a) or a == aiohttp.WSMsgType.CLOSE for a in realtime), realtime
        assert not isinstance(unload, BaseException), unload
        assert unload[0] in (0, 413) and unload[1] == 403, unload
    assert all(m["state"] == "loaded" for m in srv.health()["models"])
