"""A transcription answered as server-sent events (``stream=true``): OpenAI's
``transcript.text.delta`` per decoded segment, then ``transcript.text.done``.

The project's word for this answer is *events*: a *stream* is only ``streaming.Stream``, one
utterance arriving in pieces.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from ...backends.base import Segment
from ...engine import Engine
from ...errors import INTERNAL_MESSAGE, WhisperError
from ..errors import error_body

_LOGGER = logging.getLogger(__name__)


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class TranscriptEvents:
    """A text/event-stream answer, started by its first event; a vanished client ends it."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        self.gone = False

    @property
    def started(self) -> bool:
        return self.response.prepared

    async def send(self, data: dict[str, Any]) -> bool:
        """Write one event; False once the client has gone away."""
        try:
            if not self.started:
                await self.response.prepare(self.request)
            await self.response.write(_sse(data))
        except ConnectionError:
            self.gone = True
        return not self.gone


async def answer_with_events(
    request: web.Request, engine: Engine, samples: Any, options: Any, model: str
) -> web.StreamResponse:
    """transcript.text.delta per decoded segment, then transcript.text.done with the full text.

    The response starts with the first segment, so a fault before it (an English-only model asked
    to translate, a model that will not load) is still an ordinary error response. If the client
    goes away, the decode is cancelled.
    """
    queue: asyncio.Queue[Segment | None] = asyncio.Queue()
    job = asyncio.ensure_future(engine.transcribe(samples, options, model, queue.put_nowait))
    job.add_done_callback(lambda _: queue.put_nowait(None))
    events = TranscriptEvents(request)
    sent = ""
    try:
        while (segment := await queue.get()) is not None:
            delta = segment.text if sent else segment.text.lstrip()
            if not delta:
                continue
            sent += delta
            if not await events.send({"type": "transcript.text.delta", "delta": delta}):
                return events.response
        try:
            result = job.result()
        except WhisperError as err:
            if not events.started:
                raise
            # Mid-stream the status line is gone: say it in-band, in OpenAI's error shape.
            await events.send(_stream_error(err.message, err.type, err.code))
            return events.response
        except Exception:
            if not events.started:
                raise
            _LOGGER.exception("Transcription failed mid-stream")
            await events.send(_stream_error(INTERNAL_MESSAGE, "server_error"))
            return events.response
        if await events.send({"type": "transcript.text.done", "text": result.text}):
            await events.response.write_eof()
        return events.response
    finally:
        if not job.done():
            job.cancel()
            await asyncio.wait([job])


def _stream_error(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"type": "error", **error_body(message, type_, code=code)}
