"""WebSocket /v1/audio/transcriptions/stream with aiohttp's client: transcripts and partials
from the real server; the API key, bad queries, limits and faults on the server in process
over a fake model (tests/inprocess.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
import numpy as np
import pytest

from .harness import LONG_CLIPS, ServerProcess, clip, words
from .inprocess import FakeBackend, InProcess, serving
from .wyoming_client import load_pcm16

PATH = "/v1/audio/transcriptions/stream"
EOS = b"EOS"


def ws_url(server: ServerProcess | InProcess, **query: str) -> str:
    from urllib.parse import urlencode

    return f"ws://127.0.0.1:{server.port}{PATH}" + (f"?{urlencode(query)}" if query else "")


async def collect(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[tuple[float, dict]], int]:
    """Every JSON message (with its arrival time) until the server closes; the close code."""
    got: list[tuple[float, dict]] = []
    async for msg in ws:
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        got.append((time.monotonic(), msg.json()))
    return got, ws.close_code or 0


async def run_stream(url: str, pcm: bytes, *, speed: float = 0.0, chunk: int = 3200, **kw):
    """Send ``pcm`` (at ``speed`` x real time; 0: as fast as possible), then EOS."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url, **kw) as ws:
        reader = asyncio.create_task(collect(ws))
        started = time.monotonic()
        for i in range(0, len(pcm), chunk):
            if speed:
                due = started + i / 32000 / speed
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            if ws.closed:
                break
            await ws.send_bytes(pcm[i : i + chunk])
        eos_at = time.monotonic()
        if not ws.closed:
            await ws.send_bytes(EOS)
        messages, code = await asyncio.wait_for(reader, 120)
    return messages, code, eos_at


async def expect_error(url: str, pcm: bytes = b"", **kw) -> tuple[str, int]:
    messages, code, _ = await run_stream(url, pcm, **kw)
    assert [m["type"] for _, m in messages] == ["error"], messages
    message = messages[0][1]["message"]
    assert isinstance(message, str) and message
    return message, code


@pytest.fixture(scope="module")
def jfk_pcm() -> bytes:
    return load_pcm16(clip("whisper_cpp/jfk.wav"))


@pytest.mark.smoke
async def test_final_for_a_clip(server: ServerProcess, jfk_pcm: bytes) -> None:
    messages, code, _ = await run_stream(ws_url(server, model="whisper-1"), jfk_pcm)
    final = messages[-1][1]
    assert final["type"] == "final" and final["is_final"] is True, final
    assert all(m["type"] == "partial" for _, m in messages[:-1])
    got = words(final["text"])
    assert got[:4] == ["and", "so", "my", "fellow"] and "country" in got, final["text"]
    assert final["language"] == "en"
    assert final["duration"] == pytest.approx(11.0, abs=0.05)
    assert final["segments"] and final["segments"][0]["text"].strip()
    assert {"id", "start", "end", "text", "tokens", "avg_logprob"} <= set(final["segments"][0])
    assert "words" not in final["segments"][0]  # only on request
    assert code == aiohttp.WSCloseCode.OK


async def test_eos_glued_to_the_last_chunk(server: ServerProcess, jfk_pcm: bytes) -> None:
    """``pcm + b"EOS"`` in one message (as some clients send it) ends the stream too."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(server)) as ws,
    ):
        await ws.send_bytes(jfk_pcm[:96000])
        await ws.send_bytes(jfk_pcm[96000:] + EOS)
        messages, code = await asyncio.wait_for(collect(ws), 60)
    final = messages[-1][1]
    assert final["type"] == "final", messages
    assert final["duration"] == pytest.approx(11.0, abs=0.05)  # the marker is not audio
    assert "country" in words(final["text"]) and code == aiohttp.WSCloseCode.OK


async def test_word_timestamps_on_request(server: ServerProcess, jfk_pcm: bytes) -> None:
    """``timestamp_granularities=word`` (as the web page asks): words in the final's segments."""
    messages, code, _ = await run_stream(ws_url(server, timestamp_granularities="word"), jfk_pcm)
    final = messages[-1][1]
    assert final["type"] == "final" and code == aiohttp.WSCloseCode.OK, final
    got = [w for seg in final["segments"] for w in seg["words"]]
    assert words(" ".join(w["word"] for w in got)) == words(final["text"])
    starts = [w["start"] for w in got]
    assert starts == sorted(starts) and all(w["start"] <= w["end"] <= 11.0 for w in got)
    message, code = await expect_error(ws_url(server, timestamp_granularities="letter"), jfk_pcm)
    assert "timestamp_granularities" in message and code == 1008


async def test_model_and_prompt_and_language(server: ServerProcess) -> None:
    """base is multilingual: German speech with language=de comes back in German."""
    pcm = load_pcm16(clip("cuttledoc_fleurs/fleurs-de-000.ogg"))
    url = ws_url(server, model="base", language="de", prompt="Ein Satz auf Deutsch.")
    messages, code, _ = await run_stream(url, pcm)
    final = messages[-1][1]
    assert final["type"] == "final" and final["language"] == "de", final
    assert code == aiohttp.WSCloseCode.OK


@pytest.fixture(scope="module")
def long_pcm() -> bytes:
    """About 40 s of English speech: five LJ Speech sentences with short gaps."""
    gap = np.zeros(int(0.4 * 16000), dtype="<i2").tobytes()
    return gap.join(load_pcm16(clip(c)) for c in LONG_CLIPS)


async def test_partials_before_eos_at_4x_real_time(server: ServerProcess, long_pcm: bytes) -> None:
    seconds = len(long_pcm) / 32000
    assert 35 < seconds < 50
    messages, code, eos_at = await run_stream(ws_url(server), long_pcm, speed=4.0)
    partials = [(t, m) for t, m in messages if m["type"] == "partial"]
    early = [m for t, m in partials if t < eos_at]
    assert early, f"no partial before EOS: {messages}"
    assert all(m["is_final"] is False and isinstance(m["text"], str) for _, m in partials)
    assert any(words(m["text"]) for m in early)
    # Confirmed text only grows, each delta appends to it, and the shown text starts with it.
    committed = ""
    for _, m in partials:
        assert m["committed"] == committed + m["delta"], (committed, m)
        assert m["text"].startswith(m["committed"]), m
        committed = m["committed"]
    assert len(words(committed)) >= 5, f"little confirmed during the stream: {committed!r}"
    final = messages[-1][1]
    assert final["type"] == "final" and code == aiohttp.WSCloseCode.OK
    # The final did not wait behind partials: it came soon after EOS.
    assert messages[-1][0] - eos_at < 30
    assert "printing" in words(final["text"]) and "types" in words(final["text"])


BROKEN = "broken-model"


@contextlib.asynccontextmanager
async def strict() -> AsyncIterator[InProcess]:
    """In process: an API key, a 3 s stream limit, and a model whose load fails."""
    backend = FakeBackend(fail={BROKEN}, text=" Fake words.")
    backend.gate.set()
    backend.release.set()
    flags = ("-m", "tiny.en", "-m", BROKEN, "--max-audio-seconds", "3")
    async with serving(*flags, backend=backend, env={"WHISPER_API_KEY": "s3cret"}) as srv:
        yield srv


async def test_api_key(jfk_pcm: bytes) -> None:
    async with strict() as srv:
        message, code = await expect_error(ws_url(srv), jfk_pcm[:16000])
        assert "api key" in message.lower() and code == 1008
        message, code = await expect_error(ws_url(srv, token="wrong"), jfk_pcm[:16000])
        assert code == 1008
        assert srv.backend.decodes == []  # refused before any audio was decoded
        short = jfk_pcm[: 2 * 32000]
        for url, headers in (
            (ws_url(srv, token="s3cret"), None),
            (ws_url(srv), {"Authorization": "Bearer s3cret"}),
        ):
            messages, code, _ = await run_stream(url, short, headers=headers)
            assert messages[-1][1] == {**messages[-1][1], "type": "final", "text": "Fake words."}
            assert code == aiohttp.WSCloseCode.OK


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ({"model": "nope-model"}, "nope-model"),
        ({"language": "klingon"}, "klingon"),
        ({"prompt": "x" * 4001}, "prompt"),
    ],
)
async def test_bad_query(jfk_pcm: bytes, query: dict[str, str], needle: str) -> None:
    async with strict() as srv:
        message, code = await expect_error(ws_url(srv, token="s3cret", **query), jfk_pcm)
    assert needle in message and code == 1008


async def test_oversized_stream(jfk_pcm: bytes) -> None:
    async with strict() as srv:
        message, code = await expect_error(ws_url(srv, token="s3cret"), jfk_pcm)
        assert srv.backend.decodes == []
    assert "3 s" in message and code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_decode_failure(jfk_pcm: bytes) -> None:
    async with strict() as srv:
        url = ws_url(srv, token="s3cret", model=BROKEN)
        message, code = await expect_error(url, jfk_pcm[:32000])
        assert code == aiohttp.WSCloseCode.INTERNAL_ERROR
        assert "Traceback" not in message
        # A decode that raises is the same error message and close, its cause only logged.
        srv.backend.error = RuntimeError("the decoder broke")
        message, code = await expect_error(ws_url(srv, token="s3cret"), jfk_pcm[:32000])
        assert code == aiohttp.WSCloseCode.INTERNAL_ERROR
        assert "decoder broke" not in message and "decoder broke" in srv.log()


async def test_protocol_faults(jfk_pcm: bytes) -> None:
    async with strict() as srv:
        url = ws_url(srv, token="s3cret")
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_str("hello")
            messages, code = await collect(ws)
        assert [m["type"] for _, m in messages] == ["error"] and code == 1008
        message, code = await expect_error(url)  # EOS with no audio at all
        assert "no audio" in message and code == 1008
        # A client that just goes away mid-stream costs nothing; the server keeps serving.
        srv.backend.hold()
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_bytes(jfk_pcm[:64000])
        srv.backend.let_go()
        messages, code, _ = await run_stream(url, jfk_pcm[:64000])
        assert messages[-1][1]["type"] == "final" and code == aiohttp.WSCloseCode.OK
