"""Hostile clients that hold connections or make the event loop parse: the loop stays free, every
port is bounded, every upload takes a queue place before its audio is spooled (issue 24, cases 4-6).

Each attack runs under ``hostile.Watch`` (peak RSS growth, slowest ``/health``), then a normal
transcription shows the server still serves. The parsing attacks (case 4) run against a real
server process, whose memory is the server's alone; the connection attacks (cases 5 and 6) against
the server in process (tests/inprocess.py, on its own loop in a thread): the doors, caps and
timeouts are the real ones, the model a fake, and the memory watched this process's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.ping import Ping

from .harness import ServerProcess, clip
from .hostile import HEALTH_BOUND_MS, RSS_BOUND_MB, Watch, still_serves
from .http_helpers import SHORT, WS_PATH, form_body
from .inprocess import InProcess, in_thread
from .wyoming_client import load_pcm16, read_until, transcribe

BASE = ("-m", "tiny.en", "--preload", "--no-zeroconf")
FAKE = ("-m", "tiny.en", "--preload")  # the in-process server's flags
# ~21 MB of JSON that deflates to ~20 KB: seven million empty lists in one list.
NESTED = "[" + "[]," * 7_000_000 + "[]]"


async def _status_line(reader: asyncio.StreamReader, timeout: float) -> tuple[int, bytes]:
    """The status and body of a raw HTTP answer; (0, b"") when the server just closed."""
    try:
        raw = await asyncio.wait_for(reader.read(1 << 16), timeout)
    except (ConnectionError, TimeoutError):
        return 0, b""
    if not raw.startswith(b"HTTP/1.1 "):
        return 0, raw
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head[9:12]), body


async def _closed(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True when the server closes the connection within ``timeout`` (reading what it sends)."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ConnectionError):
        while (left := deadline - time.monotonic()) > 0:
            try:
                if not await asyncio.wait_for(reader.read(1 << 16), left):
                    return True
            except TimeoutError:
                return False
        return False
    return True


async def _all_closed(
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]], timeout: float
) -> tuple[int, float]:
    """How many of ``conns`` the server closes within ``timeout``, and how long it took; then
    ours are closed too."""
    started = time.monotonic()
    closed = await asyncio.gather(*(_closed(reader, timeout) for reader, _ in conns))
    seconds = time.monotonic() - started
    for _, writer in conns:
        writer.close()
    return sum(closed), seconds


# -- 4. the loop stays free -------------------------------------------------------------------


async def _realtime_bomb(srv: ServerProcess, *, compress: int) -> tuple[dict, str | None]:
    """Send NESTED as one Realtime text message; the server's answer and the extension it chose."""
    url = srv.url.replace("http", "ws") + "/v1/realtime?intent=transcription"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, compress=compress, max_msg_size=0) as ws,
    ):
        extension = ws._response.headers.get("Sec-WebSocket-Extensions")
        created = json.loads((await ws.receive(timeout=10)).data)
        assert created["type"] == "session.created"
        await ws.send_str(NESTED)
        msg = await ws.receive(timeout=30)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        return json.loads(msg.data), extension


@pytest.fixture(scope="module")
def parsing_server(log_dir: Path) -> Iterator[ServerProcess]:
    """A real server for the parsing attacks (the memory watched is its own)."""
    srv = ServerProcess(list(BASE))
    srv.start(log_dir)
    yield srv
    srv.stop()


async def test_realtime_json_bomb_is_refused_off_the_loop(parsing_server: ServerProcess) -> None:
    """Case 4: no permessage-deflate (its 20 KB inflated to 21 MB of lists); the same 21 MB sent
    plainly is refused by parse_json's cheap pre-check, not parsed."""
    srv = parsing_server
    for compress in (15, 0):
        with Watch(srv) as w:
            started = time.monotonic()
            reply, extension = await _realtime_bomb(srv, compress=compress)
            seconds = time.monotonic() - started
        print(
            f"case 4 realtime compress={compress}: {reply['type']} in {seconds:.2f} s,", w.summary()
        )
        assert extension is None  # the server never negotiates compression
        assert reply["type"] == "error", reply
        assert reply["error"]["code"] == "invalid_json", reply
        # aiohttp holds 3 to 4 copies of any message while reassembling it (a legal 15 MiB
        # append too): the parse itself, refused, adds nothing to that.
        assert w.growth_mb < RSS_BOUND_MB + 4 * len(NESTED) / 1e6, w.summary()
        assert w.health_failures == 0 and w.slowest_ms < HEALTH_BOUND_MS, w.summary()
    still_serves(srv)


async def _raw_post(
    srv: ServerProcess, path: str, head: dict[str, str], body: bytes, *, chunked: bool = False
) -> tuple[int, bytes]:
    """POST ``body`` as fast as the server reads it; the answer, even one sent before the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in head.items())]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    step = 1 << 20
    with contextlib.suppress(ConnectionError):
        for i in range(0, len(body), step):
            piece = body[i : i + step]
            writer.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            await asyncio.wait_for(writer.drain(), 30)
        if chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()
    try:
        return await _status_line(reader, 30)
    finally:
        writer.close()


async def test_unload_reads_a_small_body_only(parsing_server: ServerProcess) -> None:
    """Case 4: a 50 MB JSON body to /v1/model/unload is refused (413) before it is read or
    parsed, whether it declares its length or is chunked."""
    srv = parsing_server
    body = ("[" + "[]," * 16_000_000 + "[]]").encode()  # 48 MB
    for chunked in (False, True):
        with Watch(srv) as w:
            started = time.monotonic()
            head = {"Content-Type": "application/json"}
            status, answer = await _raw_post(srv, "/v1/model/unload", head, body, chunked=chunked)
            seconds = time.monotonic() - started
        print(f"case 4 unload 48 MB chunked={chunked}: {status} in {seconds:.2f} s,", w.summary())
        assert status == 413, answer[:300]
        assert json.loads(answer)["error"]["code"] == "too_large"
        w.check()
    assert srv.health()["models"][0]["state"] == "loaded"  # nothing was unloaded
    still_serves(srv)


# -- 5. bounded connections -------------------------------------------------------------------


async def test_idle_wyoming_connections_are_closed() -> None:
    """Case 5: 200 Wyoming connections that send nothing, or a transcribe and then nothing, are
    closed after --wyoming-idle-timeout (the second after their timeout error event)."""
    async with in_thread(*FAKE, "--wyoming-idle-timeout", "2", "--max-connections", "250") as srv:
        await idle_wyoming_connections_closed(srv)


async def idle_wyoming_connections_closed(srv: InProcess) -> None:
    with Watch(srv) as w:
        conns = [await asyncio.open_connection("127.0.0.1", srv.wyoming_port) for _ in range(200)]
        for i, (_, writer) in enumerate(conns):
            if i % 2:  # an utterance opened, then silence
                event = Transcribe(name="tiny.en").event()
                header = {"type": event.type, "data": event.data}
                writer.write(json.dumps(header).encode() + b"\n")
        closed, seconds = await _all_closed(conns, 6)
    print(f"case 5 wyoming idle: {closed}/200 closed after {seconds:.1f} s,", w.summary())
    assert closed == 200
    w.check()
    still_serves(srv)


async def test_half_sent_http_requests_are_closed() -> None:
    """Case 5: 20 requests whose headers never end are closed after --http-read-timeout; an
    upload whose body stops arriving gets 408 in OpenAI's shape."""
    async with in_thread(*FAKE, "--http-read-timeout", "2") as srv:
        await half_sent_http_requests_closed(srv)


async def half_sent_http_requests_closed(srv: InProcess) -> None:
    with Watch(srv) as w:
        conns = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(20)]
        for _, writer in conns:
            writer.write(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
        closed, seconds = await _all_closed(conns, 6)
    print(f"case 5 http headers: {closed}/20 closed after {seconds:.1f} s,", w.summary())
    assert closed == 20
    w.check()

    body, ctype = form_body(
        [("model", "whisper-1", None), ("file", b"RIFF" + bytes(9000), "a.wav")]
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    head = f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
    writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[:4000])
    started = time.monotonic()
    status, answer = await _status_line(reader, 6)
    print(f"case 5 stalled body: {status} after {time.monotonic() - started:.1f} s")
    writer.close()
    assert status == 408, answer
    error = json.loads(answer)["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "timeout"), error

    # Keep-alive is kept for normal clients: two requests a second apart on one connection.
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    statuses = []
    for _ in range(2):
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        statuses.append((await _status_line(reader, 5))[0])
        await asyncio.sleep(1)
    writer.close()
    assert statuses == [200, 200]
    still_serves(srv)


async def test_at_the_cap_idle_connections_make_room() -> None:
    """Case 5: with --max-connections 10 on each port, ten silent HTTP connections and ten silent
    Wyoming connections do not lock anyone out: a new connection closes the oldest idle one, so
    /health and a normal Wyoming transcription are answered at once (timeouts far away). A
    connection whose request has begun is older than the silent ones, yet they go first."""
    async with in_thread(*FAKE, "--max-connections", "10") as srv:
        await idle_make_room(srv)


async def idle_make_room(srv: InProcess) -> None:
    pcm = load_pcm16(clip(SHORT))
    with Watch(srv) as w:
        begun_reader, begun = await asyncio.open_connection("127.0.0.1", srv.port)
        begun.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers not ended yet
        await begun.drain()
        await asyncio.sleep(0.2)
        http = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(10)]
        wyoming = [await asyncio.open_connection("127.0.0.1", srv.wyoming_port) for _ in range(10)]
        await asyncio.sleep(0.3)
        begun.write(b"\r\n")
        begun_status = await _status_line(begun_reader, 5)
        begun.close()
        event = await asyncio.wait_for(transcribe("127.0.0.1", srv.wyoming_port, pcm), 60)
        closed = await asyncio.gather(*(_closed(reader, 1) for reader, _ in [*http, *wyoming]))
        for _, writer in [*http, *wyoming]:
            writer.close()
    print(f"case 5 at the cap, idle: {sum(closed)} idle closed,", w.summary())
    assert begun_status[0] == 200, begun_status
    assert event.type == "transcript" and event.data["text"] == srv.backend.answer("tiny.en")
    assert any(closed[:10]) and any(closed[10:]), closed  # the oldest idle ones made room
    w.check()


async def test_at_the_cap_busy_connections_refuse_new_ones() -> None:
    """Case 5: when every connection is busy (an utterance open on each Wyoming one, a WebSocket
    stream on each HTTP one), the next one is refused at once: an error event ``server_busy``,
    a 503 in OpenAI's shape; nobody's utterance or stream is cut."""
    async with in_thread(*FAKE, "--max-connections", "4") as srv:
        await busy_refuse(srv)


async def busy_refuse(srv: InProcess) -> None:
    clients = []
    for _ in range(4):
        client = AsyncTcpClient("127.0.0.1", srv.wyoming_port)
        await client.connect()
        await client.write_event(Transcribe().event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        clients.append(client)
    async with aiohttp.ClientSession() as http:
        streams = [await http.ws_connect(srv.url + WS_PATH) for _ in range(4)]
        # Every place taken: each WebSocket's handshake was answered, and each Wyoming
        # connection answers a ping after its audio-start (events are handled in order).
        for client in clients:
            await client.write_event(Ping(text="open").event())
            assert [e.type for e in await read_until(client, "pong", timeout=10)] == ["pong"]
        async with AsyncTcpClient("127.0.0.1", srv.wyoming_port) as extra:
            refused = await asyncio.wait_for(extra.read_event(), 5)
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, answer = await _status_line(reader, 5)
        writer.close()
        pcm = load_pcm16(clip(SHORT))
        for client in clients[:1]:  # the busy ones were not cut: one finishes its utterance
            for i in range(0, len(pcm), 4096):
                await client.write_event(
                    AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i : i + 4096]).event()
                )
            await client.write_event(AudioStop().event())
            answered = (await read_until(client, "transcript", timeout=60))[-1]
        for ws in streams:
            await ws.close()
    for client in clients:
        await client.disconnect()
    print(f"case 5 at the cap, busy: Wyoming {refused}, HTTP {status}")
    assert refused is not None and refused.type == "error", refused
    assert refused.data["code"] == "server_busy"
    assert status == 503 and json.loads(answer)["error"]["code"] == "server_busy", answer
    assert answered.type == "transcript", answered
    assert answered.data["text"] == srv.backend.answer("tiny.en"), answered
    still_serves(srv)


# -- 6. admission for every upload ------------------------------------------------------------


async def test_uploads_with_the_file_first_take_a_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 6: 20 concurrent uploads that send the file before the model field: at most the
    queue's capacity are spooled, the rest get 503 server_busy at once; those admitted finish."""
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # where this process spools uploads
    async with in_thread(*FAKE, "--max-concurrency", "1", "--max-queue", "2") as srv:
        await file_first_uploads(srv, spool)


async def file_first_uploads(srv: InProcess, spool: Path) -> None:
    capacity = 3
    audio = clip(SHORT).read_bytes()
    body, ctype = form_body([("file", audio, "a.wav"), ("model", "whisper-1", None)])
    cut = body.index(audio) + 2000  # the file part has begun: headers and some audio
    head = (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    before = set(spool.iterdir())  # what the server keeps there itself
    with Watch(srv) as w:
        conns = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(20)]
        started = time.monotonic()
        for _, writer in conns:
            writer.write(head + body[:cut])

        async def answer(reader: asyncio.StreamReader) -> tuple[int, bytes, float]:
            status, reply = await _status_line(reader, 3)
            return status, reply, time.monotonic() - started

        first = await asyncio.gather(*(answer(reader) for reader, _ in conns))
        refused_in = max((t for status, _, t in first if status), default=0.0)
        spooled = len(set(spool.iterdir()) - before)
        held = [c for c, (status, _, _) in zip(conns, first, strict=True) if status == 0]
        for _, writer in held:
            writer.write(body[cut:])
        finished = await asyncio.gather(*(_status_line(reader, 60) for reader, _ in held))
        for _, writer in conns:
            writer.close()
    busy = [json.loads(b) for s, b, _ in first if s == 503]
    print(
        f"case 6 file first: {spooled} spooled, {len(busy)} x 503 within {refused_in:.2f} s, "
        f"then {[s for s, _ in finished]},",
        w.summary(),
    )
    assert spooled <= capacity and len(held) <= capacity
    assert len(busy) == 20 - len(held)
    assert all(b["error"]["code"] == "server_busy" for b in busy)
    assert refused_in < 1.5  # at once, not after the upload
    assert all(status == 200 for status, _ in finished), finished
    w.check()
    still_serves(srv)


def test_file_first_upload_moves_its_place_to_the_named_model() -> None:
    """Case 6: an upload whose file came first held the default model's place; its model field
    names another, so it is answered by that model and the default's place is given back."""
    body, ctype = form_body([("file", clip(SHORT).read_bytes(), "a.wav"), ("model", "base", None)])
    with in_thread("-m", "tiny.en", "-m", "base", "--preload") as srv:
        req = urllib.request.Request(
            srv.url + "/v1/audio/transcriptions", data=body, headers={"Content-Type": ctype}
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            assert resp.status == 200 and json.loads(resp.read())["text"] == "base"
        assert [d.model for d in srv.backend.decodes] == ["base"]
        with urllib.request.urlopen(srv.url + "/health", timeout=10) as resp:
            health = json.loads(resp.read())
    depths = {m["name"]: m["queue_depth"] for m in health["models"]}
    assert depths == {"tiny.en": 0, "base": 0}
