"""Start-up and shutdown: build the engine, open the ports, advertise, wait for a signal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
import weakref

from aiohttp import web
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.server import AsyncEventHandler, AsyncTcpServer

from .backends.select import Selection, create_backend
from .config import Config
from .discovery import SupervisorDiscovery, ZeroconfAdvertiser
from .engine import Engine, Phase
from .errors import Busy
from .hass_names import SUPERVISOR_WEBSOCKET, HassNames
from .http.app import create_app
from .http.errors import error_body
from .models.manager import ModelManager
from .wyoming_handler import WhisperEventHandler

_LOGGER = logging.getLogger(__name__)
FULL_WARNING_SECONDS = 60.0  # one "port full" warning a minute, however many are refused


def _full(what: str, limit: int) -> Busy:
    return Busy(f"this server has {limit} {what} connections open (its limit); retry shortly")


class _RefusedHttp(asyncio.Protocol):
    """An HTTP connection past --max-connections: a 503 in OpenAI's shape, then the close.

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


class CappedSite(web.TCPSite):
    """aiohttp's TCP site with at most ``limit`` connections open (idle keep-alive ones and
    WebSockets included); the next one is refused at once (``_RefusedHttp``)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, limit: int) -> None:
        super().__init__(runner, host, port)
        self.limit = limit
        self.refused = 0
        self._answer = _refusal(_full("HTTP", limit))
        self._warned = -FULL_WARNING_SECONDS

    def _protocol(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None
        if len(server.connections) < self.limit:
            return server()
        self.refused += 1
        now = time.monotonic()
        if now - self._warned >= FULL_WARNING_SECONDS:
            self._warned = now
            _LOGGER.warning("HTTP port full (%d connections): refusing new ones", self.limit)
        return _RefusedHttp(self._answer)

    async def start(self) -> None:
        """TCPSite.start with ``_protocol`` as the factory instead of the runner's server."""
        await web.BaseSite.start(self)
        self._server = await asyncio.get_running_loop().create_server(
            self._protocol, self._host, self._port, backlog=self._backlog
        )
        if self._server.sockets:
            self._bound_port = self._server.sockets[0].getsockname()[1]


class _RefusedWyoming(AsyncEventHandler):
    """A Wyoming connection past --max-connections: an ``error`` event, then the close."""

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


class Server:
    """Everything one process runs; ``serve`` returns when a stop signal has been handled."""

    def __init__(self, config: Config, selection: Selection) -> None:
        self.config = config
        backend = create_backend(
            selection, config.max_concurrency, config.encoder_window, config.threads
        )
        self.manager = ModelManager(
            config.models, backend, ttl=config.ttl, cache_dir=config.cache_dir
        )
        self.engine = Engine(config, self.manager, selection)
        self._stop = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._wyoming: AsyncTcpServer | None = None
        self._zeroconf: ZeroconfAdvertiser | None = None
        self._supervisor: SupervisorDiscovery | None = None
        self._connections: weakref.WeakSet[WhisperEventHandler] = weakref.WeakSet()
        self._wyoming_warned = -FULL_WARNING_SECONDS

    def _wyoming_handler(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> AsyncEventHandler:
        """One handler per Wyoming connection, remembered so that a drain can see its state;
        past --max-connections open ones, a refusal (``server_busy``)."""
        limit = self.config.max_connections
        if sum(1 for h in list(self._connections) if not h.writer.is_closing()) >= limit:
            now = time.monotonic()
            if now - self._wyoming_warned >= FULL_WARNING_SECONDS:
                self._wyoming_warned = now
                _LOGGER.warning("Wyoming port full (%d connections): refusing new ones", limit)
            return _RefusedWyoming(reader, writer, _full("Wyoming", limit))
        handler = WhisperEventHandler(self.engine, reader, writer)
        self._connections.add(handler)
        return handler

    @property
    def in_flight(self) -> bool:
        """Work a stop must let finish: admitted requests, answers being written, streams whose
        speaker is talking (WebSocket, Realtime, Wyoming: nothing is admitted before their end),
        and Wyoming utterances whose audio is arriving before any speech."""
        if self.engine.busy or self.engine.speakers:
            return True
        return any(h.mid_utterance for h in list(self._connections))

    def request_stop(self) -> None:
        self._stop.set()

    async def start(self) -> None:
        cfg = self.config
        await self.manager.start(wait=cfg.preload)
        self._start_names()
        self._runner = web.AppRunner(
            create_app(self.engine),
            access_log=None,
            # A client that hangs up cancels its handler: the decode stops at the next segment,
            # its worker and queue place are freed, its temp file is deleted.
            handler_cancellation=True,
            # A request's headers must arrive within this from the connection's start or its
            # last answer (aiohttp's keep-alive timer: it closes a connection still waiting for
            # a whole request), so a slowloris or an idle keep-alive holds no place for long.
            keepalive_timeout=cfg.http_read_timeout,
        )
        await self._runner.setup()
        await CappedSite(self._runner, cfg.host, cfg.port, cfg.max_connections).start()
        _LOGGER.info("HTTP API on http://%s:%d", cfg.host, cfg.port)
        if not cfg.no_wyoming:
            self._wyoming = AsyncTcpServer(cfg.host, cfg.wyoming_port)
            await self._wyoming.start(self._wyoming_handler)
            _LOGGER.info("Wyoming on tcp://%s:%d", cfg.host, cfg.wyoming_port)
            if not cfg.no_zeroconf:
                self._zeroconf = ZeroconfAdvertiser(cfg.wyoming_port, cfg.host, cfg.zeroconf_name)
                await self._zeroconf.start()
            if cfg.supervisor_token:  # a Home Assistant add-on: announce through the Supervisor
                self._supervisor = SupervisorDiscovery(
                    cfg.supervisor_url, cfg.supervisor_token, cfg.wyoming_port
                )
                self._supervisor.start()
        self.engine.phase = Phase.SERVING  # every port is open: /ready may answer 200

    def _start_names(self) -> None:
        cfg = self.config
        if cfg.no_hass_names:
            return
        if cfg.hass_url and cfg.hass_token:
            self.engine.names = HassNames(cfg.hass_url, cfg.hass_token, "url")
        elif cfg.supervisor_token:  # an add-on with homeassistant_api: true
            self.engine.names = HassNames(SUPERVISOR_WEBSOCKET, cfg.supervisor_token, "supervisor")
        if self.engine.names is not None:
            self.engine.names.start()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.start()
            _LOGGER.info("Ready")
            await self._stop.wait()
            await self.drain()
        finally:
            await self.shutdown()

    async def drain(self) -> None:
        """Answer /ready with 503 at once; keep serving for --shutdown-delay, then stop.

        The delay is for load balancers: their health check sees the 503 and stops sending
        before the ports close, so no client is refused (docs/scaling.md). A second signal
        ends the delay (Ctrl-C twice).
        """
        self.engine.phase = Phase.DRAINING
        delay = self.config.shutdown_delay
        if delay > 0:
            _LOGGER.info("Stopping: not ready, still serving for %.1f s", delay)
            self._stop.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        _LOGGER.info("Stopping")

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight work finish (--drain-seconds at most), then release."""
        self.engine.phase = Phase.DRAINING
        if self.engine.names is not None:
            await self.engine.names.stop()
        if self._supervisor is not None:
            await self._supervisor.stop()
        if self._zeroconf is not None:
            await self._zeroconf.stop()
        wyoming_listener = getattr(self._wyoming, "_server", None)
        if wyoming_listener is not None:
            wyoming_listener.close()
        if self._runner is not None:
            for site in list(self._runner.sites):
                await site.stop()
        deadline = time.monotonic() + self.config.drain_seconds
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._wyoming is not None:
            await self._wyoming.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.manager.close()
        await self.engine.close()


async def run_server(config: Config, selection: Selection) -> None:
    await Server(config, selection).serve()
