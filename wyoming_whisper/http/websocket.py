"""WebSocket /v1/audio/transcriptions/stream: PCM in, partials while it arrives, one final.

Protocol (see docs/streaming.md): the client sends binary messages of 16 kHz 16-bit mono PCM and
then the 3 bytes ``EOS``; the server sends ``{"type": "partial", ...}`` while audio arrives and
``{"type": "final", ...}`` after EOS, then closes. Any fault is one ``{"type": "error"}`` message
followed by a close frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from ..audio import PcmConverter
from ..backends.base import Result
from ..errors import INTERNAL_MESSAGE, InvalidRequest, TooLarge, WhisperError
from ..formats import segment_json
from ..request import build_request
from ..streaming import Partial, Stream
from .auth import check_key
from .state import ENGINE

_LOGGER = logging.getLogger(__name__)
routes = web.RouteTableDef()
PATH = "/v1/audio/transcriptions/stream"
EOS = b"EOS"
MAX_MESSAGE_BYTES = 4 << 20  # one binary message (about 2 min of audio)
CLOSE_POLICY = 1008  # RFC 6455: policy violation (bad key, bad request)


def split_eos(data: bytes, received: int) -> tuple[bytes, bool]:
    """(audio, ended): EOS alone, or EOS glued to the end of the last audio message.

    Some clients send ``pcm + b"EOS"`` as one message. 16-bit PCM always adds up to an even
    number of bytes, so a message ending in EOS that makes the running total odd cannot be all
    audio: its last three bytes are the marker. Audio that merely ends in those bytes keeps the
    total even and stays audio.
    """
    if data == EOS:
        return b"", True
    if data.endswith(EOS) and (received + len(data)) % 2 == 1:
        return data[: -len(EOS)], True
    return data, False


def final_message(result: Result, seconds: float) -> dict[str, Any]:
    segments = []
    for seg in result.segments:
        item = segment_json(seg)
        if seg.words:  # asked for with timestamp_granularities=word; probability included
            item["words"] = [asdict(w) for w in seg.words]
        segments.append(item)
    return {
        "type": "final",
        "text": result.text,
        "is_final": True,
        "language": result.language,
        "duration": round(seconds, 3),
        "segments": segments,
    }


@routes.get(PATH)
async def websocket(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    config = engine.config
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, compress=False)  # no inflate bombs
    await ws.prepare(request)
    stream: Stream | None = None
    try:
        if config.api_key:
            check_key(request, config.api_key, query=True)  # browsers cannot set headers
        query = request.query
        req = build_request(
            engine,
            model=query.get("model"),
            language=query.get("language"),
            prompt=query.get("prompt"),
            granularities=query.getall("timestamp_granularities", []),
        )
        # Refused at once, before the client streams its audio.
        engine.admission.check_capacity(req.model)

        async def send_partial(partial: Partial) -> None:
            if not ws.closed:
                await ws.send_json({"type": "partial", **asdict(partial), "is_final": False})

        stream = Stream.open(engine, req, on_partial=send_partial)
        converter = PcmConverter(16000, 2, 1)
        received = 0
        while True:
            msg = await ws.receive(timeout=config.wyoming_idle_timeout)
            if msg.type == WSMsgType.BINARY:
                audio, ended = split_eos(msg.data, received)
                received += len(audio)
                if audio:
                    await stream.feed(converter, audio)
                if ended:
                    break
            elif msg.type == WSMsgType.TEXT:
                if msg.data.strip() == "EOS":  # lenient: EOS sent as text
                    break
                raise InvalidRequest("send audio as binary messages and end with the bytes EOS")
            elif msg.type == WSMsgType.ERROR:
                raise TooLarge(f"message rejected: {ws.exception()}")
            else:  # the client closed or went away: nothing to answer
                return ws
        if stream.samples == 0:
            raise InvalidRequest("no audio received before EOS", param="audio")
        with engine.admission.answering():  # a shutdown waits for the final message
            result = await stream.finish()
            await ws.send_json(final_message(result, stream.seconds))
            await ws.close()
    except TimeoutError:
        await _fail(ws, "no audio received for too long", WSCloseCode.POLICY_VIOLATION)
    except WhisperError as err:
        code = WSCloseCode.MESSAGE_TOO_BIG if isinstance(err, TooLarge) else CLOSE_POLICY
        if err.status >= 500:
            code = WSCloseCode.INTERNAL_ERROR
        await _fail(ws, err.message, code, err=err)
    except (ConnectionError, asyncio.CancelledError):
        raise
    except Exception:
        _LOGGER.exception("WebSocket stream failed")
        await _fail(ws, INTERNAL_MESSAGE, WSCloseCode.INTERNAL_ERROR)
    finally:
        if stream is not None:
            await stream.close()
    return ws


async def _fail(
    ws: web.WebSocketResponse, message: str, code: int, *, err: WhisperError | None = None
) -> None:
    """One error message (with the fault's ``code`` and ``param``, as HTTP and Wyoming name
    it), then the close frame."""
    _LOGGER.warning("WebSocket client error: %s", message)
    if ws.closed:
        return
    body: dict[str, Any] = {"type": "error", "message": message}
    if err is not None:
        body.update(code=err.code, param=err.param)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_json(body)
        reason = message.encode()[:120].decode(errors="ignore").encode()
        await ws.close(code=code, message=reason)
