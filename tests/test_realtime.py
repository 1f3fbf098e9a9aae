"""The Realtime API's transcription sessions (/v1/realtime?intent=transcription).

The OpenAI SDK's own realtime client streams a real recording in real time to the real server;
raw WebSocket clients send what a broken client sends to the server in process (a fake model,
tests/inprocess.py), and each fault is an ``error`` event after which the same session still
transcribes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import aiohttp
import numpy as np
import pytest
from openai import AsyncOpenAI

from wyoming_whisper.audio import G711
from wyoming_whisper.errors import WhisperError
from wyoming_whisper.http.realtime.session import session_request
from wyoming_whisper.http.realtime.settings import Settings
from wyoming_whisper.streaming import ENDPOINT_TRAIL_SECONDS

from .harness import ServerProcess, clip, words
from .http_helpers import REALTIME_SESSION, ulaw, wav_bytes
from .inprocess import InProcess, serving
from .wyoming_client import load_pcm16

GA_SESSION = REALTIME_SESSION
MANUAL = json.loads(json.dumps(GA_SESSION))
MANUAL["audio"]["input"]["turn_detection"] = None  # the client commits


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_the_sdk_gets_deltas_during_speech_and_the_http_transcript(
    server: ServerProcess,
) -> None:
    pcm = load_pcm16(clip("deepspeech/LDC93S1.wav"), rate=24000)  # 2.9 s, no pause
    client = AsyncOpenAI(api_key="unused", base_url=f"{server.url}/v1", max_retries=0)
    seen: list[tuple[float, Any]] = []
    before = server.health()["streaming"]
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        created = await conn.recv()
        assert created.type == "session.created" and created.session.type == "transcription"
        await conn.session.update(session=GA_SESSION)  # type: ignore[arg-type]
        assert (await conn.recv()).type == "session.updated"

        async def read() -> None:
            async for event in conn:
                seen.append((time.perf_counter(), event))
                if event.type in (
                    "conversation.item.input_audio_transcription.completed",
                    "conversation.item.input_audio_transcription.failed",
                ):
                    return

        reader = asyncio.create_task(read())
        step = 2400 * 2  # 100 ms of 24 kHz audio per append, paced in real time
        started = time.perf_counter()
        audio = pcm + bytes(24000 * 2)  # a second of silence ends the turn (server VAD)
        for i, offset in enumerate(range(0, len(audio), step)):
            await asyncio.sleep(max(0.0, started + i * 0.1 - time.perf_counter()))
            await conn.input_audio_buffer.append(audio=b64(audio[offset : offset + step]))
        await asyncio.wait_for(reader, 60)
    kinds = [e.type for _, e in seen]
    at = {e.type: t for t, e in reversed(seen)}  # the first of each kind
    assert kinds[0] == "input_audio_buffer.speech_started", kinds
    stopped = at["input_audio_buffer.speech_stopped"]
    assert kinds.index("input_audio_buffer.committed") > kinds.index(
        "input_audio_buffer.speech_stopped"
    )
    deltas = [(t, e.delta) for t, e in seen if e.type.endswith("transcription.delta")]
    assert [d for t, d in deltas if t < stopped], f"no delta before the speech ended: {kinds}"
    done = seen[-1][1]
    assert done.type == "conversation.item.input_audio_transcription.completed", done
    assert done.item_id == seen[0][1].item_id
    assert done.usage.type == "duration" and 2.5 < done.usage.seconds < 4.5
    print(f"speech_stopped -> completed {seen[-1][0] - stopped:.3f} s")
    # The answer is the decode started during the silence, before the server VAD ended the turn.
    assert server.health()["streaming"]["early_hits"] == before["early_hits"] + 1
    assert seen[-1][0] - stopped < 1.0, "completed long after the speech stopped"
    joined = words("".join(d for _, d in deltas))
    assert len(joined) >= len(words(done.transcript)) - 2, (deltas, done.transcript)

    # The same audio through the HTTP API gives the same transcript: what the item's final
    # decoded, the audio up to ENDPOINT_TRAIL_SECONDS after the end of its speech
    # (docs/streaming.md), a little of the silence after the recording included.
    end_ms = next(e for _, e in seen if e.type == "input_audio_buffer.speech_stopped").audio_end_ms
    cut = (end_ms + round(ENDPOINT_TRAIL_SECONDS * 1000)) * 24 * 2
    http = await client.audio.transcriptions.create(
        model="whisper-1", file=("LDC93S1.wav", wav_bytes(audio[:cut], 24000)), language="en"
    )
    assert done.transcript == http.text


async def realtime(url: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(url + "/v1/realtime?intent=transcription", **kwargs)
    except BaseException:
        await session.close()
        raise
    ws._own_session = session  # type: ignore[attr-defined]  # closed with the socket below
    return ws


async def close(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.close()
    await ws._own_session.close()  # type: ignore[attr-defined]


async def next_event(ws: aiohttp.ClientWebSocketResponse, *kinds: str) -> dict[str, Any]:
    """The next event of one of ``kinds`` (or an error), skipping the others."""
    while True:
        event = await ws.receive_json(timeout=60)
        if not kinds or event["type"] in kinds or event["type"] == "error":
            return event


async def test_bad_events_get_error_events_and_the_session_goes_on() -> None:
    """In process: each fault's code and param, the same session answering after them (the
    fake model's words: what is checked here is the session, not the transcript)."""
    async with serving() as srv:
        srv.backend.text = " One, two, three."
        await bad_events_then_a_transcript(srv)
        assert (await srv.health())["status"] == "ok"


async def bad_events_then_a_transcript(srv: InProcess) -> None:
    ws = await realtime(srv.url)
    try:
        assert (await next_event(ws))["type"] == "session.created"
        await ws.send_str(json.dumps({"type": "session.update", "session": MANUAL}))
        assert (await next_event(ws))["type"] == "session.updated"
        faults: list[tuple[Any, str | None, str | None]] = [
            ("{not json", "invalid_json", None),
            (
                '{"type": "session.update", "session": ' + "[" * 5000 + "]" * 5000 + "}",
                "invalid_json",
                None,
            ),
            ({"type": "response.create", "event_id": "ev1"}, "invalid_event_type", "type"),
            ({"type": "input_audio_buffer.append", "audio": "***"}, "invalid_audio", "audio"),
            ({"type": "input_audio_buffer.append", "audio": 12}, "invalid_value", "audio"),
            (
                {
                    "type": "session.update",
                    "session": {
                        "type": "transcription",
                        "audio": {"input": {"format": {"type": "audio/flac"}}},
                    },
                },
                "invalid_value",
                "session.audio.input.format.type",
            ),
            (
                {
                    "type": "session.update",
                    "session": {
                        "type": "transcription",
                        "audio": {"input": {"transcription": {"language": "de"}}},
                    },
                },
                "unsupported_language",
                "session.audio.input.transcription.language",
            ),
            (
                {
                    "type": "session.update",
                    "session": {
                        "type": "transcription",
                        "audio": {"input": {"transcription": {"model": "no-such-model"}}},
                    },
                },
                "model_not_found",
                "session.audio.input.transcription.model",
            ),
            (
                {
                    "type": "session.update",
                    "session": {
                        "type": "transcription",
                        "audio": {"input": {"transcription": {"prompt": 0}}},
                    },
                },
                "invalid_value",
                "session.audio.input.transcription.prompt",
            ),
            (
                {
                    "type": "transcription_session.update",
                    "session": {"input_audio_transcription": {"model": 5}},
                },
                "invalid_value",
                "session.input_audio_transcription.model",
            ),
            (
                {"type": "session.update", "session": {"type": "transcription", "audio": []}},
                "invalid_value",
                "session.audio",
            ),
            (
                {"type": "session.update", "session": {"type": "realtime"}},
                "invalid_value",
                "session.type",
            ),
            ({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty", None),
            (
                {"type": "input_audio_buffer.append", "audio": b64(bytes((15 << 20) + 3))},
                "too_large",
                "audio",
            ),
        ]
        for event, code, param in faults:
            await ws.send_str(event if isinstance(event, str) else json.dumps(event))
            got = await next_event(ws)
            assert got["type"] == "error", (event, got)
            error = got["error"]
            assert error["type"] == "invalid_request_error", got
            assert (error["code"], error["param"]) == (code, param), (str(event)[:80], got)
            assert error["message"] and "Traceback" not in error["message"]
            if isinstance(event, dict) and "event_id" in event:
                assert error["event_id"] == event["event_id"]
        await ws.send_bytes(b"\x00\x01")  # binary frames are not events
        assert (await next_event(ws))["error"]["code"] == "invalid_json"

        # After all that, the same session transcribes (manual commit, audio sent at once).
        pcm = load_pcm16(clip("speech_recognition/english.wav"), rate=24000)
        await ws.send_str(json.dumps({"type": "input_audio_buffer.append", "audio": b64(pcm)}))
        await ws.send_str(json.dumps({"type": "input_audio_buffer.commit"}))
        committed = await next_event(ws, "input_audio_buffer.committed")
        done = await next_event(ws, "conversation.item.input_audio_transcription.completed")
        assert done["item_id"] == committed["item_id"]
        assert words(done["transcript"]) == ["one", "two", "three"], done
        final = srv.backend.decodes[-1]  # the whole clip, resampled from 24 kHz
        assert abs(final.seconds - len(pcm) / 48000) < 0.01, final.seconds

        # clear drops the buffer: a commit right after has nothing to commit.
        await ws.send_str(json.dumps({"type": "input_audio_buffer.append", "audio": b64(pcm)}))
        await ws.send_str(json.dumps({"type": "input_audio_buffer.clear"}))
        assert (await next_event(ws))["type"] == "input_audio_buffer.cleared"
        await ws.send_str(json.dumps({"type": "input_audio_buffer.commit"}))
        assert (await next_event(ws))["error"]["code"] == "input_audio_buffer_commit_empty"
    finally:
        await close(ws)


async def test_the_beta_shape_with_g711_ulaw(server: ServerProcess) -> None:
    """Deployed clients still speak the beta: transcription_session.update, g711_ulaw."""
    ws = await realtime(server.url, headers={"OpenAI-Beta": "realtime=v1"})
    try:
        assert (await next_event(ws))["type"] == "transcription_session.created"
        update = {
            "type": "transcription_session.update",
            "session": {
                "input_audio_format": "g711_ulaw",
                "input_audio_transcription": {"model": "whisper-1", "language": "en"},
                "turn_detection": None,
                "input_audio_noise_reduction": {"type": "near_field"},
            },
        }
        await ws.send_str(json.dumps(update))
        updated = await next_event(ws)
        assert updated["type"] == "transcription_session.updated", updated
        assert updated["session"]["input_audio_format"] == "g711_ulaw"
        assert updated["session"]["turn_detection"] is None
        audio = ulaw(load_pcm16(clip("speech_recognition/english.wav"), rate=8000))
        await ws.send_str(json.dumps({"type": "input_audio_buffer.append", "audio": b64(audio)}))
        await ws.send_str(json.dumps({"type": "input_audio_buffer.commit"}))
        assert (await next_event(ws, "conversation.item.created"))["item"]["role"] == "user"
        done = await next_event(ws, "conversation.item.input_audio_transcription.completed")
        assert words(done["transcript"]) == ["one", "two", "three"], done
    finally:
        await close(ws)


@pytest.mark.parametrize("intent", ["conversation"])
async def test_only_transcription_sessions(intent: str) -> None:
    async with serving() as srv, aiohttp.ClientSession() as http:
        url = f"{srv.url}/v1/realtime?intent={intent}"
        async with http.ws_connect(url) as ws:
            got = await ws.receive_json(timeout=10)
            assert got["type"] == "error" and got["error"]["param"] == "intent", got
            assert (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.CLOSE


def test_g711_tables_decode_as_telephony_does() -> None:
    """ITU-T G.711 at 16-bit scale: the values audioop.ulaw2lin / alaw2lin gave."""
    u, a = G711["ulaw"], G711["alaw"]
    assert (u[0x00], u[0x80], u[0x7F], u[0xFF]) == (-32124, 32124, 0, 0)
    assert (a[0x55], a[0xD5], a[0x2A], a[0xAA]) == (-8, 8, -32256, 32256)
    assert np.all(np.diff(u[0x80:].astype(int)) < 0) and np.all(np.diff(u[:0x80].astype(int)) > 0)
    pcm = (np.sin(np.arange(800) / 5) * 20000).astype("<i2")
    back = u[np.frombuffer(ulaw(pcm.tobytes()), dtype=np.uint8)].astype(int)
    assert np.max(np.abs(back - pcm)) <= 1024  # the coarsest μ-law step at this level


class Served:
    """The one thing build_request asks of the engine: map a model name onto a served one."""

    def model_name(self, requested: str | None) -> str:
        return requested or "tiny.en"


@pytest.mark.parametrize(
    ("fields", "beta", "message", "param"),
    [
        ({"model": 5}, False, "model must be a string", "session.audio.input.transcription.model"),
        (
            {"language": ["de"]},
            True,
            "language must be a string",
            "session.input_audio_transcription.language",
        ),
        (
            {"prompt": 0},
            False,
            "prompt must be a string",
            "session.audio.input.transcription.prompt",
        ),
    ],
)
def test_the_transcription_fields_are_checked_by_build_request(
    fields: dict[str, Any], beta: bool, message: str, param: str
) -> None:
    """The session's model, language and prompt get request.py's one check, the fault named
    where the session update put the field."""
    with pytest.raises(WhisperError) as info:
        session_request(Served(), Settings(**fields), beta=beta)  # type: ignore[arg-type]
    assert (info.value.message, info.value.code, info.value.param) == (
        message,
        "invalid_value",
        param,
    )
    req = session_request(Served(), Settings(prompt="  Ecobee "), beta=False)  # type: ignore[arg-type]
    assert (req.model, req.language, req.prompt) == ("tiny.en", None, "Ecobee")
