"""Start-up and shutdown: build the engine, open the ports, advertise, wait for a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from aiohttp import web
from wyoming.server import AsyncEventHandler, AsyncTcpServer

from .admission import Phase
from .backends.select import Selection, create_backend
from .config import Config
from .connections import HttpCap, WyomingCap
from .discovery import SupervisorDiscovery, ZeroconfAdvertiser
from .engine import Engine
from .hass_names import SUPERVISOR_WEBSOCKET, HassNames
from .http.app import create_app
from .http.openai import sweep_uploads
from .models.manager import ModelManager
from .wyoming_handler import WhisperEventHandler

_LOGGER = logging.getLogger(__name__)


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
        self.engine = Engine(config, self.manager, selection, _hass_names(config))
        self._stop = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._wyoming: AsyncTcpServer | None = None
        self._zeroconf: ZeroconfAdvertiser | None = None
        self._supervisor: SupervisorDiscovery | None = None
        self._wyoming_cap = WyomingCap(config.max_connections)
        self._http_cap: HttpCap | None = None
        self._http: asyncio.Server | None = None

    def _wyoming_handler(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> AsyncEventHandler:
        """One handler per Wyoming connection, remembered by the cap (which a drain reads too)."""
        return self._wyoming_cap.admit(
            reader, writer, lambda: WhisperEventHandler(self.engine, reader, writer)
        )

    @property
    def in_flight(self) -> bool:
        """Work a stop must let finish: admitted requests, answers being written, streams whose
        speaker is talking (WebSocket, Realtime, Wyoming: nothing is admitted before their end),
        and Wyoming utterances whose audio is arriving before any speech."""
        if self.engine.admission.busy or self.engine.speakers:
            return True
        handlers = list(self._wyoming_cap.open)
        return any(getattr(h, "mid_utterance", False) for h in handlers)

    def request_stop(self) -> None:
        self._stop.set()

    async def start(self) -> None:
        cfg = self.config
        swept = await self.engine.run_audio(sweep_uploads)
        if swept:
            _LOGGER.info("Deleted %d upload(s) left by a server that did not stop", swept)
        await self.manager.start(wait=cfg.preload)
        self._start_names()
        app = create_app(self.engine)
        self._http_cap = HttpCap(cfg.max_connections)
        app.middlewares.insert(0, self._http_cap.track)  # outermost: every request counts
        self._runner = web.AppRunner(
            app,
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
        self._http = await self._http_cap.serve(self._runner, cfg.host, cfg.port)
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
        self.engine.admission.phase = Phase.SERVING  # every port is open: /ready may answer 200

    def _start_names(self) -> None:
        names = self.engine.assist.names
        if names is None:
            return
        names.start()
        if self.engine.assist.enabled:  # load the sentences now, not on the first command
            self.engine.assist.sentences.get(self.config.language)

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
        self.engine.admission.phase = Phase.DRAINING
        delay = self.config.shutdown_delay
        if delay > 0:
            _LOGGER.info("Stopping: not ready, still serving for %.1f s", delay)
            self._stop.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        _LOGGER.info("Stopping")

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight work finish (--drain-seconds at most), then release."""
        self.engine.admission.phase = Phase.DRAINING
        if self.engine.assist.names is not None:
            await self.engine.assist.names.stop()
        if self._supervisor is not None:
            await self._supervisor.stop()
        if self._zeroconf is not None:
            await self._zeroconf.stop()
        wyoming_listener = getattr(self._wyoming, "_server", None)
        if wyoming_listener is not None:
            wyoming_listener.close()
        if self._http is not None:
            self._http.close()  # stop accepting; open connections finish below
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


def _hass_names(cfg: Config) -> HassNames | None:
    """Where Home Assistant's names are read from, if anywhere (started with the server)."""
    if cfg.no_hass_names:
        return None
    if cfg.hass_url and cfg.hass_token:
        return HassNames(cfg.hass_url, cfg.hass_token, "url")
    if cfg.supervisor_token:  # an add-on with homeassistant_api: true
        return HassNames(SUPERVISOR_WEBSOCKET, cfg.supervisor_token, "supervisor")
    return None
