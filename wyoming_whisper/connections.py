"""Each port's connection cap (--max-connections), for HTTP and Wyoming alike.

At the cap a new connection first takes the place of the oldest *idle* one (an HTTP connection
between requests or still waiting for its headers, a Wyoming connection with no utterance open);
on HTTP a connection that has sent nothing goes before one whose request bytes are still being read:
a stranger who opens connections and sends nothing cannot lock Home Assistant or a browser out,
while nobody's request or utterance is ever cut. Only when every connection is busy is the new
one refused at once: HTTP with a 503 in OpenAI's shape, Wyoming with an ``error`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.server import AsyncEventHandler

from .errors import Busy
from .http.errors import error_body

_LOGGER = logging.getLogger(__name__)
FULL_WARNING_SECONDS = 60.0  # one "port full" warning a minute, however many are refused


def full(what: str, limit: int) -> Busy:
    return Busy(f"this server has {limit} {what} connections busy (its limit); retry shortly")


class _Warner:
    """Logs "port full" at most once a minute, so a flood cannot fill the log."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._warned = -FULL_WARNING_SECONDS

    def __call__(self, limit: int, action: str) -> None:
        now = time.monotonic()
        if now - self._warned >= FULL_WARNING_SECONDS:
            self._warned = now
            _LOGGER.warning("%s port full (%d connections): %s", self.what, limit, action)


# -- HTTP --------------------------------------------------------------------------------------


class _RefusedHttp(asyncio.Protocol):
    """An HTTP connection past the cap: a 503 in OpenAI's shape, then the close.

    Written before the request is read, so it costs no parsing and no request handler. The close
    waits for the request's first bytes (read and dropped), at most a second: closing with them
    unread would reset the connection, and the client could lose the 503.
    """

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.answer)
        asyncio.get_running_loop().call_later(1.0, transport.close)

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.close()


def _refusal(err: Busy) -> bytes:
    body = json.dumps(error_body(err.message, err.type, code=err.code)).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Retry-After: {err.retry_after}\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    )
    return head.encode() + b"\r\n" + body


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Heard(asyncio.Protocol):
    """A request handler behind a thin proxy that notes when its client sent bytes.

    Between a request's bytes arriving and its handler starting, a connection looks idle to the
    middleware; without this note a burst of silent connections could close a client whose
    request was already on its way.
    """

    def __init__(self, handler: RequestHandler, cap: HttpCap) -> None:
        self.handler = handler
        self.cap = cap

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.cap.heard[self.handler] = time.monotonic()
        self.handler.data_received(data)

    def eof_received(self) -> None:
        self.handler.eof_received()  # None: the transport closes itself

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cap.heard.pop(self.handler, None)
        self.handler.connection_lost(exc)


class HttpCap:
    """The HTTP port's cap: the protocol factory for ``loop.create_server`` and the middleware
    that tells busy connections (a request being answered, a WebSocket open) from idle ones."""

    def __init__(self, limit: int) -> None:
        self.runner: web.AppRunner | None = None  # set by ``serve``
        self.limit = limit
        self.refused = 0
        self.evicted = 0
        self._busy: dict[RequestHandler, int] = {}  # requests in progress per connection
        self.heard: dict[RequestHandler, float] = {}  # bytes not yet a request: when they last came
        self._answer = _refusal(full("HTTP", limit))
        self._warn = _Warner("HTTP")

    @web.middleware
    async def track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        protocol = request.protocol
        self._busy[protocol] = self._busy.get(protocol, 0) + 1
        self.heard.pop(protocol, None)
        try:
            return await handler(request)
        finally:
            self.heard.pop(protocol, None)  # a body's bytes, read with the request
            if self._busy[protocol] <= 1:
                del self._busy[protocol]
            else:
                self._busy[protocol] -= 1

    async def serve(self, runner: web.AppRunner, host: str, port: int) -> asyncio.Server:
        """Listen with this cap in front of the runner's (already set up) request handlers."""
        self.runner = runner
        return await asyncio.get_running_loop().create_server(self.protocol, host, port)

    def idlest(self, open_: list[RequestHandler]) -> RequestHandler | None:
        """The connection to close for a new one: the oldest that has sent nothing, else the one
        whose unfinished request has been quiet longest; None when every connection has a
        request."""
        idle = [c for c in open_ if c not in self._busy]
        silent = [c for c in idle if c not in self.heard]
        if silent:
            return silent[0]
        return min(idle, key=lambda c: self.heard[c], default=None)

    def protocol(self) -> asyncio.Protocol:
        assert self.runner is not None and self.runner.server is not None
        server = self.runner.server
        open_ = server.connections  # oldest first
        if len(open_) >= self.limit:
            idle = self.idlest(open_)
            if idle is None:
                self.refused += 1
                self._warn(self.limit, "every connection is busy; refusing new ones")
                return _RefusedHttp(self._answer)
            self.evicted += 1
            self._warn(self.limit, "closing the oldest idle connections for new ones")
            idle.force_close()
        return _Heard(server(), self)


# -- Wyoming -----------------------------------------------------------------------------------


class _RefusedWyoming(AsyncEventHandler):
    """A Wyoming connection past the cap: an ``error`` event, then the close."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, err: Busy
    ) -> None:
        super().__init__(reader, writer)
        self.err = err

    async def handle_event(self, event: Event) -> bool:
        return False

    async def run(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await async_write_event(
                Error(text=self.err.message, code=self.err.code).event(), self.writer
            )
        self.writer.close()


class WyomingCap:
    """The Wyoming port's cap over the open connections' handlers; a handler tells it is idle by its
    ``idle_since`` (when it began waiting with no utterance open, None while it has one)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.evicted = 0
        self.refused = 0
        self.open: weakref.WeakSet[AsyncEventHandler] = weakref.WeakSet()
        self._warn = _Warner("Wyoming")

    def admit(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        make: Callable[[], AsyncEventHandler],
    ) -> AsyncEventHandler:
        """The handler for a new connection: ``make()``'s, after closing the oldest idle
        connection when the port is full, or a refusal when every connection is busy."""
        live = [c for c in list(self.open) if not c.writer.is_closing()]
        if len(live) >= self.limit:
            idle = [c for c in live if getattr(c, "idle_since", None) is not None]
            if not idle:
                self.refused += 1
                self._warn(self.limit, "every connection is busy; refusing new ones")
                return _RefusedWyoming(reader, writer, full("Wyoming", self.limit))
            oldest = min(idle, key=lambda c: getattr(c, "idle_since", 0.0))
            self.evicted += 1
            self._warn(self.limit, "closing the oldest idle connections for new ones")
            oldest.writer.close()
        handler = make()
        self.open.add(handler)
        return handler
