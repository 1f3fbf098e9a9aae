"""Bounded admission, limits, cancellation and resource flatness.

Admission, limits and cancellation are the doors' and the engine's behaviour, shown on the
server in this process over a fake decode the test holds and lets go (tests/inprocess.py); the
resources after many requests and the loop's freedom under big uploads are a real server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient

from .harness import PLATFORM_ONLY, ServerProcess, clip, eventually_async
from .http_helpers import (
    SHORT,
    WS_PATH,
    Resources,
    long_wav,
    metric,
    short_ok,
    ws_transcribe,
)
from .http_helpers import multipart as make_multipart
from .inprocess import Decode, InProcess, serving, wait_running
from .wyoming_client import load_pcm16, read_until, send_audio, transcribe


async def http_transcribe(
    session: aiohttp.ClientSession, url: str, audio: bytes, model: str = "whisper-1"
) -> tuple[int, dict, dict]:
    body, ctype = make_multipart({"model": model}, audio)
    async with session.post(
        url + "/v1/audio/transcriptions", data=body, headers={"Content-Type": ctype}
    ) as resp:
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


# -- 1. admission (in process: a fake decode held until the test lets it go) ----------------------

ANSWER = " Accepted and answered."


async def test_full_queue_refuses_at_once_and_accepted_requests_finish() -> None:
    audio = clip(SHORT).read_bytes()
    short_pcm = load_pcm16(clip(SHORT))
    async with serving("--max-concurrency", "1", "--max-queue", "1") as srv:
        srv.backend.text = ANSWER
        srv.backend.hold()
        async with aiohttp.ClientSession() as session:
            accepted = [
                asyncio.create_task(http_transcribe(session, srv.url, audio)) for _ in range(2)
            ]
            await wait_running(srv)  # one decoding, the other waiting for the worker
            await eventually_async(
                lambda: srv.in_flight() == 2, 10, interval=0.01, what="two requests admitted"
            )

            # HTTP: 503 in OpenAI's shape with Retry-After, at once.
            started = time.monotonic()
            status, body, headers = await http_transcribe(session, srv.url, audio)
            assert status == 503, body
            assert time.monotonic() - started < 2
            assert headers["Retry-After"] == "1"
            assert (
                body["error"]["code"] == "server_busy" and body["error"]["type"] == "server_error"
            )

            # Wyoming: the error comes after audio-start, before a single chunk is sent.
            async with AsyncTcpClient("127.0.0.1", srv.wyoming_port) as client:
                await client.write_event(Transcribe().event())
                await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
                event = await asyncio.wait_for(client.read_event(), 2)
                assert event is not None and event.type == "error"
                assert event.data["code"] == "server_busy"

            # WebSocket: an error message on connect, before any audio.
            async with session.ws_connect(srv.ws_url + WS_PATH) as ws:
                msg = await asyncio.wait_for(ws.receive(), 2)
                assert msg.type == aiohttp.WSMsgType.TEXT
                assert json.loads(msg.data)["type"] == "error"
                assert "retry" in json.loads(msg.data)["message"]

            # Nothing refused reached the model; every accepted request finishes, one at a time.
            assert len(srv.backend.decodes) == 1
            srv.backend.let_go()
            for status, body, _ in await asyncio.gather(*accepted):
                assert status == 200 and body["text"] == ANSWER.strip(), body
            decodes = srv.backend.decodes
            assert len(decodes) == 2 and all(1.5 < d.seconds < 1.6 for d in decodes), decodes

            # The queue is free again.
            assert (await ws_transcribe(session, srv.url, short_pcm))["type"] == "final"
        samples = await srv.metrics()
    assert metric(samples, "whisper_rejected_requests_total", model="tiny.en") >= 3
    assert metric(samples, "whisper_queue_depth", model="tiny.en") == 0
    assert metric(samples, "whisper_queue_capacity", model="tiny.en") == 2


# -- 3. cancellation (in process; tests/test_backends.py shows a real decode stops at its next
# segment once its token is cancelled) --------------------------------------------------------


@contextlib.asynccontextmanager
async def one_worker(spool: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[InProcess]:
    """One worker, every decode held until let go; uploads spooled in ``spool``."""
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    async with serving("--max-concurrency", "1", "--max-stream-seconds", "900") as srv:
        srv.backend.text = ANSWER
        srv.backend.hold()
        yield srv


async def final_running(srv: InProcess) -> Decode:
    """The one decode that answers (no early or live one) once it runs, held."""

    def final() -> Decode | None:
        running = [d for d in srv.backend.running() if not d.cancel or not d.cancel.speculative]
        return running[0] if running else None

    return await eventually_async(final, 10, interval=0.01, what="the final decode running")


async def _worker_is_free_again(srv: InProcess, cancelled: Decode) -> None:
    """The hung-up decode was cancelled and ended while still held (no release), and the one
    worker takes the next request at once."""
    await eventually_async(
        lambda: cancelled.finished.is_set(), 10, interval=0.01, what="the decode ended"
    )
    assert cancelled.cancelled and not srv.backend.release.is_set()
    # (over HTTP: no live decode of its own that the final could overtake and cancel)
    async with aiohttp.ClientSession() as session:
        nxt = asyncio.create_task(http_transcribe(session, srv.url, clip(SHORT).read_bytes()))
        running = await wait_running(srv)
        assert running[0] is not cancelled
        srv.backend.let_go()
        status, body, _ = await asyncio.wait_for(nxt, 10)
    assert status == 200 and body["text"] == ANSWER.strip(), body


async def test_http_client_that_hangs_up_frees_its_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = long_wav(60, tmp_path / "long.wav").read_bytes()
    spool = tmp_path / "spool"
    async with one_worker(spool, monkeypatch) as srv, aiohttp.ClientSession() as session:
        job = asyncio.create_task(http_transcribe(session, srv.url, audio))
        decode = await final_running(srv)
        job.cancel()  # closes the connection
        await asyncio.gather(job, return_exceptions=True)
        await _worker_is_free_again(srv, decode)
        samples = await srv.metrics()
        assert metric(samples, "whisper_cancelled_decodes_total", model="tiny.en") == 1
        assert metric(samples, "whisper_queue_depth", model="tiny.en") == 0
        assert metric(samples, "whisper_requests_total", route=
                      "/v1/audio/transcriptions", status="cancelled") == 1  # fmt: skip
        assert list(spool.glob("whisper-*")) == []  # the upload's temp file is gone


async def test_wyoming_client_that_hangs_up_frees_its_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pcm = load_pcm16(long_wav(60, tmp_path / "long.wav"))
    async with one_worker(tmp_path / "spool", monkeypatch) as srv:
        client = AsyncTcpClient("127.0.0.1", srv.wyoming_port)
        await client.connect()
        await send_audio(client, pcm, chunk_bytes=64000)
        # transcript-start: the answer has begun, its final decode is held.
        events = await read_until(client, "transcript-start", timeout=10)
        assert events[-1].type == "transcript-start", events[-1]
        decode = await final_running(srv)
        await client.disconnect()
        await _worker_is_free_again(srv, decode)
        samples = await srv.metrics()
        # (its live decodes, overtaken, may have been cancelled too)
        assert metric(samples, "whisper_cancelled_decodes_total", model="tiny.en") >= 1
        assert metric(samples, "whisper_requests_total", route="wyoming", status="cancelled") == 1


# -- 2. limits (in process) --------------------------------------------------------------------


async def test_limits_audio_length_buffers_and_idle_clients(tmp_path: Path) -> None:
    thirty = long_wav(30, tmp_path / "30.wav")
    eight = load_pcm16(long_wav(8, tmp_path / "8.wav"))
    flags = ("--max-audio-seconds", "20", "--max-stream-seconds", "5")
    async with (
        serving(*flags, "--wyoming-idle-timeout", "1") as srv,
        aiohttp.ClientSession() as session,
    ):
        srv.backend.text = ANSWER
        # Decoded duration over --max-audio-seconds: 413 with a message.
        status, body, _ = await http_transcribe(session, srv.url, thirty.read_bytes())
        assert status == 413 and "at most 20 s" in body["error"]["message"]

        # Wyoming buffer over --max-stream-seconds: an error event as soon as it passes.
        async with AsyncTcpClient("127.0.0.1", srv.wyoming_port) as client:
            # The server closes the exchange at audio-stop after the error.
            with contextlib.suppress(ConnectionError):
                await send_audio(client, eight)
            event = (await read_until(client, "transcript", timeout=10))[-1]
            assert event.type == "error" and event.data["code"] == "too_large"
            assert "5 s" in event.data["text"]
        assert srv.backend.decodes == []  # none of it was decoded
        event = await transcribe("127.0.0.1", srv.wyoming_port, load_pcm16(clip(SHORT)))
        assert event.data["text"] == ANSWER.strip()

        # WebSocket stream over the cap: an error message.
        reply = await ws_transcribe(session, srv.url, eight)
        assert reply["type"] == "error" and "5 s" in reply["message"]

        # A Wyoming client that stops mid-utterance: error after the idle timeout.
        async with AsyncTcpClient("127.0.0.1", srv.wyoming_port) as client:
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            chunk = AudioChunk(rate=16000, width=2, channels=1, audio=bytes(3200))
            await client.write_event(chunk.event())
            started = time.monotonic()
            event = await asyncio.wait_for(client.read_event(), 5)
            assert event is not None and event.data["code"] == "timeout"
            assert 0.8 < time.monotonic() - started < 3
            assert await asyncio.wait_for(client.read_event(), 5) is None  # then hung up on

        # A WebSocket that stops sending: error, then close.
        async with session.ws_connect(srv.ws_url + WS_PATH) as ws:
            await ws.send_bytes(bytes(3200))
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert json.loads(msg.data)["type"] == "error"
            assert "too long" in json.loads(msg.data)["message"]

        status, body, _ = await http_transcribe(session, srv.url, clip(SHORT).read_bytes())
        assert status == 200 and body["text"] == ANSWER.strip()


# -- resources after many requests --------------------------------------------------------------


async def _mixed(srv: ServerProcess, session: aiohttp.ClientSession, i: int) -> None:
    """One of five kinds of request, each checked."""
    short = clip(SHORT)
    kind = i % 5
    if kind == 0:
        status, body, _ = await http_transcribe(session, srv.url, short.read_bytes())
        assert status == 200 and short_ok(body["text"]), body
    elif kind == 1:
        status, body, _ = await http_transcribe(session, srv.url, b"not audio at all" * 50)
        assert status == 400 and body["error"]["code"] == "invalid_audio"
    elif kind == 2:
        event = await transcribe("127.0.0.1", srv.wyoming_port, _PCM[short])
        assert short_ok(event.data["text"])
    elif kind == 3:
        reply = await ws_transcribe(session, srv.url, _PCM[short])
        assert reply["type"] == "final" and short_ok(reply["text"]), reply
    else:
        status, body, _ = await http_transcribe(session, srv.url, b"x", model="nope")
        assert status == 400 and body["error"]["code"] == "model_not_found"


_PCM: dict[Path, bytes] = {}


async def _run(n: int, make: Callable[[int], Awaitable[None]], parallel: int = 4) -> None:
    gate = asyncio.Semaphore(parallel)

    async def one(i: int) -> None:
        async with gate:
            await make(i)

    await asyncio.gather(*(one(i) for i in range(n)))


@pytest.mark.slow
async def test_resources_flat_after_many_requests(start_server, tmp_path: Path) -> None:
    tmpdir = tmp_path / "server-tmp"
    tmpdir.mkdir()
    srv: ServerProcess = start_server(
        "-m", "tiny.en", "--preload", "--no-zeroconf", "--max-concurrency", "2", "--beam-size", "1",
        env={"TMPDIR": str(tmpdir)},
    )  # fmt: skip
    assert srv.proc is not None
    _PCM[clip(SHORT)] = load_pcm16(clip(SHORT))
    async with aiohttp.ClientSession() as session:
        await _run(40, lambda i: _mixed(srv, session, i))  # warm-up: pools and caches filled
    await asyncio.sleep(0.5)
    before = Resources.of(srv.proc.pid, tmpdir)

    async with aiohttp.ClientSession() as session:
        await _run(120, lambda i: _mixed(srv, session, i))  # (a leak per request shows in a few)
    await asyncio.sleep(0.5)
    after = Resources.of(srv.proc.pid, tmpdir)
    assert after.fds <= before.fds, (before, after)
    # Thread pools never shrink, and asyncio's default executor (VAD work) starts a thread only
    # when a burst finds all busy: allow that lazy growth, bounded, but no thread per request.
    assert after.threads <= before.threads + 2, (before, after)
    assert after.temp_files == 0 and after.children == 0, (before, after)

    # RSS does not grow with the number of requests: 120 more Wyoming requests.
    pcm = _PCM[clip(SHORT)]

    async def wyoming(_: int) -> None:
        event = await transcribe("127.0.0.1", srv.wyoming_port, pcm)
        assert short_ok(event.data["text"])

    rss_before = Resources.of(srv.proc.pid).rss_mb
    await _run(120, wyoming)
    await asyncio.sleep(0.5)  # idle (a command's scratch stays mapped: malloc.IdleTrim)
    rss_after = Resources.of(srv.proc.pid).rss_mb
    print(f"RSS {rss_before:.1f} MB -> {rss_after:.1f} MB after 120 Wyoming requests")
    print(f"resources before {before} after {after}")
    assert rss_after - rss_before < 20
    assert "Traceback" not in srv.log()


def _pyav_mapped(pid: int) -> bool:
    """Whether FFmpeg's libraries (PyAV's) are mapped into the process."""
    return "libavcodec" in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason=PLATFORM_ONLY + "/proc only")
async def test_pyav_is_loaded_by_the_first_upload_not_by_raw_pcm(start_server) -> None:
    """PyAV (17 MB of RSS) is loaded only when a file must be decoded: Home Assistant's raw PCM
    never needs it (faster_whisper_internals defers faster-whisper's import of it)."""
    srv: ServerProcess = start_server("-m", "tiny.en", "--preload", "--no-zeroconf")
    assert srv.proc is not None
    event = await transcribe("127.0.0.1", srv.wyoming_port, load_pcm16(clip(SHORT)))
    assert short_ok(event.data["text"]), event.data
    assert not _pyav_mapped(srv.proc.pid)

    async with aiohttp.ClientSession() as session:
        status, body, _ = await http_transcribe(session, srv.url, clip(SHORT).read_bytes())
    assert status == 200 and short_ok(body["text"]), body
    assert _pyav_mapped(srv.proc.pid)
    assert "Traceback" not in srv.log()


async def test_health_answers_while_a_200_mb_upload_and_4_mb_chunks_arrive(
    server: ServerProcess,
) -> None:
    """Spooling an upload to disk and converting large stream chunks run off the event loop."""
    upload = b"\x00" * (200 * 1024 * 1024 - 4096)  # at the default --max-upload-mb; not audio
    body, ctype = make_multipart({"model": "tiny.en"}, upload, "big.wav")
    pcm = bytes((4 << 20) - 2)  # one WebSocket message just under its limit: 131 s of PCM
    latencies: list[float] = []
    done = threading.Event()

    def poll() -> None:  # its own thread: the test's loop is busy writing 200 MB
        while not done.is_set():
            started = time.perf_counter()
            with urllib.request.urlopen(server.url + "/health", timeout=10) as resp:
                assert resp.status == 200
                resp.read()
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)

    async def send(session: aiohttp.ClientSession) -> tuple[int, dict]:
        url = server.url + "/v1/audio/transcriptions"
        async with session.post(url, data=body, headers={"Content-Type": ctype}) as resp:
            return resp.status, await resp.json()

    async def stream(session: aiohttp.ClientSession) -> dict:
        url = server.url.replace("http", "ws") + WS_PATH
        async with session.ws_connect(url, max_msg_size=0) as ws:
            for _ in range(2):
                await ws.send_bytes(pcm)
            await ws.send_bytes(b"EOS")
            return dict(json.loads((await ws.receive()).data))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        async with aiohttp.ClientSession() as session:
            (status, answer), final = await asyncio.gather(send(session), stream(session))
    finally:
        done.set()
        poller.join()
    assert status == 400 and answer["error"]["param"] == "file", answer  # zeros, not a WAV
    assert final["type"] == "final" and final["duration"] > 260, final
    ordered = sorted(latencies)
    print(
        f"/health: {len(ordered)} polls, median {ordered[len(ordered) // 2] * 1000:.1f} ms, "
        f"p90 {ordered[int(len(ordered) * 0.9)] * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )
    assert len(ordered) >= 10
    assert ordered[int(len(ordered) * 0.9)] < 0.05, ordered[-5:]
