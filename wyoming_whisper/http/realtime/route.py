"""The Realtime API's WebSocket route, ``GET /v1/realtime?intent=transcription``.

It opens the socket (echoing a subprotocol, never compressing), checks the API key and the
intent, and feeds each text message to the ``Session``; a fault that ends the session is an
``error`` event and then the close frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from ...errors import INTERNAL_MESSAGE, TooLarge, WhisperError
from ..auth import check_key
from ..state import ENGINE
from .session import Events, Session
from .settings import EventError

_LOGGER = logging.getLogger(__name__)
routes = web.RouteTableDef()
PATH = "/v1/realtime"
# A 15 MiB append is 20 MiB of base64; 1 MiB more lets one a little larger get its error event.
# aiohttp holds 3 to 4 copies of a message while it reassembles and decodes it (~80 MB at this
# size). Compression is never negotiated: 20 KB of deflate inflated to 21 MB of lists.
MAX_MESSAGE_BYTES = 21 << 20
BETA_PROTOCOL = "openai-beta.realtime-v1"


@routes.get(PATH)
async def realtime(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    config = engine.config
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    # Echo one offered subprotocol ("realtime" first), or a browser drops the connection.
    protocols = sorted((p for p in offered if p), key=lambda p: p != "realtime")
    ws = web.WebSocketResponse(
        max_msg_size=MAX_MESSAGE_BYTES, protocols=protocols[:1], compress=False
    )
    await ws.prepare(request)
    beta = BETA_PROTOCOL in offered or "realtime=v1" in request.headers.get("OpenAI-Beta", "")
    session = Session(engine, ws, beta=beta)
    try:
        if config.api_key:
            check_key(request, config.api_key, protocol=True)  # browsers cannot set headers
        intent = request.query.get("intent", "transcription")
        if intent != "transcription":
            raise EventError(
                f"this server offers transcription sessions only: intent={intent!r}",
                param="intent",
            )
        engine.admission.check_capacity(engine.model_name(None))
        await session.send_session("transcription_session.created" if beta else "session.created")
        while True:
            try:
                msg = await ws.receive(timeout=config.wyoming_idle_timeout)
            except TimeoutError:
                if session.busy:
                    continue  # waiting for its transcripts is not idling
                raise
            if msg.type == WSMsgType.TEXT:
                await session.handle(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await session.events.error(
                    EventError("send events as JSON text messages", code="invalid_json")
                )
            elif msg.type == WSMsgType.ERROR:
                await _close(
                    session.events,
                    TooLarge(f"message rejected: {ws.exception()}"),
                    WSCloseCode.MESSAGE_TOO_BIG,
                )
                return ws
            else:  # the client closed or went away: its work is cancelled below
                return ws
    except TimeoutError:
        await _close(
            session.events,
            EventError("no event received for too long", code="idle_timeout"),
            WSCloseCode.POLICY_VIOLATION,
        )
    except WhisperError as err:
        code = WSCloseCode.TRY_AGAIN_LATER if err.status >= 500 else WSCloseCode.POLICY_VIOLATION
        await _close(session.events, err, code)
    except (ConnectionError, asyncio.CancelledError):
        raise
    except Exception:
        _LOGGER.exception("Realtime session failed")
        await _close(session.events, WhisperError(INTERNAL_MESSAGE), WSCloseCode.INTERNAL_ERROR)
    finally:
        await session.close()
    return ws


async def _close(events: Events, err: WhisperError, code: int) -> None:
    """A fault that ends the session: its ``error`` event, then the close frame."""
    await events.error(err)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await events.ws.close(code=code, message=err.message.encode()[:120])
