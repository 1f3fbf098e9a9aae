"""The server in the test's own process and event loop, over a fake backend: for the tests of
protocol behaviour where a real model adds nothing (framing, error events, the order of events,
admission, cancellation on hang-up, connection caps, timeouts, API keys, Realtime's checks).

``serving(*flags)`` runs the real ``server.Server`` (the Wyoming handler behind its connection
cap, the aiohttp app with its middlewares, handler cancellation and keep-alive deadline, exactly
as ``python -m wyoming_whisper`` wires them) on free loopback ports, its Config read from the same
flags a process takes; only the backend is the fake below. It starts in milliseconds, so a test
that needs its own flags costs nothing like a process start and a model load.

The fake (``FakeBackend``, ``FakeModel``) answers what a test scripts: a text, segments, an error
to raise, or nothing until the test releases it (a decode that hangs, for busy and queue-full
answers, ordering and cancellation); each call is recorded with its audio, options and cancel
token. Every test of transcripts, accuracy, the encoder window, early decoding or live text on
real speech still runs the real model on a real server process (harness.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import aiohttp
import numpy as np

from wyoming_whisper import server as server_module
from wyoming_whisper.backends.base import (
    CancelToken,
    Result,
    Score,
    Scorer,
    Segment,
    TranscribeOptions,
)
from wyoming_whisper.backends.select import Selection
from wyoming_whisper.config import Config, load_config
from wyoming_whisper.engine import Engine
from wyoming_whisper.models.manager import ModelManager
from wyoming_whisper.server import Server

from .http_helpers import parse_metrics

HOLD_SECONDS = 10.0  # the longest a held fake decode waits for its release


# --- The fake backend ---------------------------------------------------------------------------


@dataclass
class Decode:
    """One call of a fake model's ``transcribe``: what it was given and how it ended."""

    model: str
    audio: np.ndarray
    options: TranscribeOptions
    cancel: CancelToken | None
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def seconds(self) -> float:
        return float(self.audio.shape[0]) / 16000

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.cancelled


@dataclass
class FakeModel:
    """A loaded model that answers as its backend scripts it (its name, by default)."""

    name: str
    backend: FakeBackend | None = None
    release: threading.Event = field(default_factory=threading.Event)
    unloaded: bool = False
    is_multilingual: bool = True
    encodes: int = 0

    def transcribe(
        self,
        audio: np.ndarray,
        options: TranscribeOptions,
        on_segment: Callable[[Segment], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> Result:
        decode = Decode(self.name, audio, options, cancel)
        backend = self.backend
        if backend is not None:
            backend.decodes.append(decode)
        try:
            # Held until released; a cancel ends the wait, as a real decode stops at its next
            # segment once its client is gone.
            deadline = time.monotonic() + HOLD_SECONDS
            while not self.release.wait(0.005):
                if decode.cancelled or time.monotonic() >= deadline:
                    break
            if backend is None:
                return Result(text=self.name, language="en", duration=audio.shape[0] / 16000)
            if backend.error is not None:
                raise backend.error
            return backend.result(self.name, audio, options, on_segment, cancel)
        finally:
            decode.finished.set()

    def scorer(self, audio: np.ndarray, language: str | None) -> Scorer:
        """Encodes once the test releases it; scores every text alike."""
        self.encodes += 1
        self.release.wait(HOLD_SECONDS)
        return lambda texts: [Score(-1.0, 1) for _ in texts]

    def unload(self) -> None:
        self.unloaded = True


@dataclass
class FakeBackend:
    """Loads ``FakeModel``s (each load waits for ``gate``); ``fail``: names whose load fails.

    Its models share ``release``: a decode waits for it (``HOLD_SECONDS`` at most). What they
    answer: ``error`` raised if set, else ``segments`` (one Segment each, ``on_segment`` called
    for each, the text their join) or one segment of ``text``, or, with neither, the model's name
    and no segments; ``language``, or the one asked for, or "en".
    """

    name: str = "faster-whisper"
    encoder_window: str = "full"
    loads: list[str] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    fail: set[str] = field(default_factory=set)
    made: list[FakeModel] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    text: str | None = None
    segments: tuple[str, ...] | None = None
    error: BaseException | None = None
    language: str | None = None
    decodes: list[Decode] = field(default_factory=list)
    _waiting: int = 0

    def resolve(self, name: str, cache_dir: object = None) -> str:
        return name

    @property
    def gate_waiting(self) -> bool:
        """Whether a load is waiting at the gate now."""
        return self._waiting > 0

    def load(self, path: str) -> FakeModel:
        self._waiting += 1
        try:
            self.gate.wait(HOLD_SECONDS)
        finally:
            self._waiting -= 1
        self.loads.append(path)
        if path in self.fail:
            raise OSError(f"no weights for {path}")
        model = FakeModel(path, self, self.release, is_multilingual=not path.endswith(".en"))
        self.made.append(model)
        return model

    def result(
        self,
        model: str,
        audio: np.ndarray,
        options: TranscribeOptions,
        on_segment: Callable[[Segment], None] | None,
        cancel: CancelToken | None,
    ) -> Result:
        duration = audio.shape[0] / 16000
        texts = self.segments if self.segments is not None else (self.text,)
        segments: list[Segment] = []
        for i, text in enumerate(t for t in texts if t is not None):
            if cancel is not None and cancel.cancelled:
                break
            share = duration / max(1, len(texts))
            segment = Segment(id=i, seek=0, start=i * share, end=(i + 1) * share, text=text)
            segments.append(segment)
            if on_segment is not None:
                on_segment(segment)
        joined = "".join(s.text for s in segments).strip()
        return Result(
            text=joined if segments or self.text is not None else model,
            language=self.language or options.language or "en",
            duration=duration,
            segments=tuple(segments),
            task=options.task,
        )

    def answer(self, model: str) -> str:
        """The text a decode of ``model`` answers (what ``result`` gives)."""
        texts = self.segments if self.segments is not None else (self.text,)
        if not any(t is not None for t in texts):
            return model
        return "".join(t for t in texts if t is not None).strip()

    def hold(self) -> None:
        """From now on every decode waits until ``let_go`` (or its client hangs up)."""
        self.release.clear()

    def let_go(self) -> None:
        self.release.set()

    def running(self) -> list[Decode]:
        """The decodes started and not finished."""
        return [d for d in self.decodes if not d.finished.is_set()]


def engine_with(backend: FakeBackend, **settings: object) -> Engine:
    """An Engine over ``backend`` serving tiny.en (the default) and base; no server around it."""
    config = Config(models=("tiny.en", "base"), default_model="tiny.en", **settings)  # type: ignore[arg-type]
    manager = ModelManager(config.models, backend, ttl=config.ttl)  # type: ignore[arg-type]
    return Engine(config, manager, Selection("faster-whisper", "cpu", 0, "int8"))


# --- The server in this process -----------------------------------------------------------------


class Log(logging.Handler):
    """The server's log records while it runs, as text like a process's log (tracebacks too)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class InProcess:
    """A running in-process server: what tests ask a ``ServerProcess`` for (``health`` and
    ``metrics`` awaited: a blocking client on the loop ``serving`` shares would stop it), and
    its engine and fake backend."""

    server: Server
    backend: FakeBackend
    port: int
    wyoming_port: int
    logs: Log
    stopped: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def engine(self) -> Engine:
        return self.server.engine

    @property
    def config(self) -> Config:
        return self.server.config

    def log(self) -> str:
        return self.logs.text()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body or text, headers) of one GET."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url + path, **kwargs) as resp,
        ):
            try:
                body: Any = await resp.json(content_type=None)
            except ValueError:
                body = await resp.text()
            return resp.status, body, dict(resp.headers)

    async def health(self) -> dict[str, Any]:
        status, body, _ = await self.get("/health")
        assert status == 200, body
        return dict(body)

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics, as ``http_helpers.metrics`` gives them."""
        status, text, headers = await self.get("/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain"), text
        return parse_metrics(text)

    async def stop(self) -> None:
        """What the server does after a stop signal (``Server.serve``): not ready at once,
        still serving for --shutdown-delay, then stop accepting and drain."""
        self.stopped = True
        await self.server.drain()
        await self.server.shutdown()

    def in_flight(self) -> int:
        """Requests admitted and not answered, every model."""
        return sum(self.engine.admission.in_flight().values())


@contextlib.contextmanager
def _captured(handler: Log, level: str) -> Iterator[None]:
    """The package's records at ``level`` (--log-level) to ``handler``, as a process logs."""
    logger = logging.getLogger("wyoming_whisper")
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)


@contextlib.asynccontextmanager
async def serving(
    *flags: str,
    backend: FakeBackend | None = None,
    env: dict[str, str] | None = None,
    models: tuple[str, ...] = ("tiny.en", "base"),
    ports: tuple[int, int] = (0, 0),
) -> AsyncIterator[InProcess]:
    """The real server on 127.0.0.1's free ports in this event loop, its Config read from
    ``flags`` and ``env`` as ``python -m wyoming_whisper`` reads them (the models: ``models``
    unless a flag names them; zeroconf off), over ``backend`` (a fresh FakeBackend whose loads
    and decodes do not wait). On exit every held load and decode is let go and the server shuts
    down as after a stop signal (``Server.shutdown``: in-flight work drained) unless the test
    stopped it (``InProcess.stop``). ``ports``: the HTTP and Wyoming ports (0: free ones)."""
    if backend is None:
        backend = FakeBackend()
        backend.gate.set()
        backend.release.set()
    named = any(f in ("-m", "--model") for f in flags)
    argv = [*([] if named else [a for m in models for a in ("-m", m)]), *flags]
    config = load_config([*argv, "--no-zeroconf"], {**(env or {})})
    config = dataclasses.replace(config, host="127.0.0.1", port=ports[0], wyoming_port=ports[1])
    logs = Log()
    srv: InProcess | None = None
    with _captured(logs, config.log_level):
        with mock.patch.object(server_module, "create_backend", lambda *_: backend):
            server = Server(config, Selection("faster-whisper", "cpu", 0, "int8"))
        try:
            await server.start()
            http = server._http
            assert http is not None
            wyoming = getattr(server._wyoming, "_server", None)
            srv = InProcess(
                server,
                backend,
                port=http.sockets[0].getsockname()[1],
                wyoming_port=wyoming.sockets[0].getsockname()[1] if wyoming else 0,
                logs=logs,
            )
            yield srv
        finally:
            backend.gate.set()
            backend.release.set()
            if srv is None or not srv.stopped:
                await server.shutdown()


async def wait_running(srv: InProcess, count: int = 1, timeout: float = 10.0) -> list[Decode]:
    """Wait until ``count`` decodes are running (held by the fake); return them."""
    from .harness import eventually_async

    def running() -> list[Decode] | None:
        now = srv.backend.running()
        return now if len(now) >= count else None

    return await eventually_async(
        running, timeout, interval=0.005, what=f"{count} decode(s) running"
    )


class in_thread:
    """``serving`` on an event loop of its own in a thread, for a test or a fixture that is not
    on an event loop (urllib, the OpenAI SDK's sync client) or that outlives one test. In an
    async test use ``async with``: the test's loop keeps running while the server stops, so
    the connections its clients closed are closed (a plain ``with`` would block that loop, and
    the server's stop would wait for them)."""

    def __init__(self, *flags: str, **kwargs: Any) -> None:
        self._flags = flags
        self._kwargs = kwargs
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> InProcess:
        ready = threading.Event()
        box: dict[str, Any] = {}

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                async with serving(*self._flags, **self._kwargs) as srv:
                    box["srv"] = srv
                    ready.set()
                    await self._stop.wait()
            except BaseException as err:
                box["error"] = err
                raise
            finally:
                ready.set()

        self._thread = threading.Thread(
            target=self._loop.run_until_complete,
            args=(main(),),
            name="in-process server",
            daemon=True,
        )
        self._thread.start()
        ready.wait(60)
        if "srv" not in box:
            self._thread.join(10)
            raise RuntimeError("the in-process server did not start") from box.get("error")
        return box["srv"]  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        assert self._thread is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        self._loop.close()

    async def __aenter__(self) -> InProcess:
        return await asyncio.get_running_loop().run_in_executor(None, self.__enter__)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.__exit__)
