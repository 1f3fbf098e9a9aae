"""Several models, each loaded in the background, shared by requests, unloaded after its idle TTL.

All state changes happen on the event loop; the blocking parts (resolving, loading, unloading) run
in a dedicated thread. Two requests racing for an unloaded model wait on the same load.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends.base import Backend, LoadedModel
from ..errors import ModelLoadError

_LOGGER = logging.getLogger(__name__)
# A file system path inside an error's text: absolute, home-relative or a Windows drive. A URL's
# path is left alone (its slashes follow "scheme:/" or another slash).
_PATH = re.compile(r"(?<![\w.:/~-])(?:~?/|[A-Za-z]:[\\/])[^\s'\"`,;()\[\]<>]*")
MAX_REASON = 200  # characters of a load error that /health and clients see


def _leaf(match: re.Match[str]) -> str:
    """A path as ``.../<last part>``: what failed stays named, where the server keeps it not."""
    leaf = re.split(r"[\\/]", match.group().rstrip("/\\"))[-1]
    return f".../{leaf}" if leaf else "..."


def public_reason(text: str) -> str:
    """A load error as /health and clients see it: its first line, each path cut to its last
    part, short.

    The full text (paths in it tell where the server keeps its files) goes to the log only.
    """
    line = text.strip().splitlines()[0] if text.strip() else "load failed"
    line = _PATH.sub(_leaf, line)
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 3] + "..."


class ModelState(str, enum.Enum):  # noqa: UP042 (str() keeps the member name)
    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"
    ERROR = "error"


@dataclass
class ManagedModel:
    """One served model and what /health reports about it."""

    name: str
    ttl: float
    state: ModelState = ModelState.UNLOADED
    model: LoadedModel | None = None
    path: str | None = None
    error: str | None = None
    last_used: float | None = None  # wall clock, for reports
    idle_since: float = field(default_factory=time.monotonic)
    load_seconds: float | None = None
    loads: int = 0
    users: int = 0
    load_task: asyncio.Task[LoadedModel] | None = None
    unload_timer: asyncio.TimerHandle | None = None
    unload_pending: bool = False  # asked to unload while decoding: unload when the last user ends

    def status(self) -> dict[str, Any]:
        until: float | None = None  # None: not counting down (unloaded, in use, or no TTL)
        if self.state is ModelState.LOADED and self.ttl > 0 and not self.users:
            until = max(0.0, self.ttl - (time.monotonic() - self.idle_since))
        return {
            "name": self.name,
            "state": self.state.value,
            "loaded": self.state is ModelState.LOADED,
            "unload_pending": self.unload_pending,
            "ttl": self.ttl,
            "ttl_seconds": self.ttl,  # the reference server's name for the same idle time
            "seconds_until_unload": None if until is None else round(until, 1),
            "last_used": self.last_used,
            "load_seconds": None if self.load_seconds is None else round(self.load_seconds, 3),
            "active_requests": self.users,
            "loads": self.loads,
            "error": self.error,
        }


Resolver = Callable[[str, Path | None], str]


class ModelManager:
    def __init__(
        self,
        names: tuple[str, ...],
        backend: Backend,
        *,
        ttl: float,
        cache_dir: Path | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.backend = backend
        self.cache_dir = cache_dir
        # Names mean different files to each backend (CTranslate2 dirs, mlx-community repos).
        self._resolver: Resolver = resolver or backend.resolve
        self.models: dict[str, ManagedModel] = {n: ManagedModel(n, ttl) for n in names}
        # One loader thread: loads are rare and heavy; two at once would only fight for memory.
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="model-loader")
        self._closed = False
        self._expiring: set[asyncio.Task[None]] = set()  # strong references until done
        self.on_change: Callable[[ManagedModel, str], None] | None = None

    def __contains__(self, name: str) -> bool:
        return name in self.models

    def status(self) -> list[dict[str, Any]]:
        return [m.status() for m in self.models.values()]

    async def start(self, *, wait: bool) -> None:
        """Begin loading every model; with ``wait``, return once all are loaded (or failed)."""
        tasks = [self._ensure_loading(m) for m in self.models.values()]
        if wait:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _ensure_loading(self, managed: ManagedModel) -> asyncio.Task[LoadedModel]:
        if managed.load_task is None or (
            managed.load_task.done() and managed.state is not ModelState.LOADED
        ):
            managed.load_task = asyncio.get_running_loop().create_task(self._load(managed))
            # A background load whose failure nobody awaits must not log "never retrieved".
            managed.load_task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return managed.load_task

    async def _load(self, managed: ManagedModel) -> LoadedModel:
        managed.state = ModelState.LOADING
        managed.error = None
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            model = await loop.run_in_executor(self._loader, self._load_blocking, managed.name)
        except Exception as err:
            managed.state = ModelState.ERROR
            full = str(err) or err.__class__.__name__
            managed.error = public_reason(full)
            _LOGGER.error("Loading model %s failed: %s", managed.name, full)
            self._notify(managed, "load_failed")
            raise ModelLoadError(
                f"model {managed.name!r} could not be loaded: {managed.error}"
            ) from err
        if self._closed:
            await loop.run_in_executor(self._loader, model.unload)
            raise ModelLoadError("server is shutting down")
        managed.model = model
        managed.state = ModelState.LOADED
        managed.load_seconds = time.monotonic() - started
        managed.loads += 1
        managed.idle_since = time.monotonic()
        _LOGGER.info("Model %s loaded in %.2f s", managed.name, managed.load_seconds)
        self._notify(managed, "loaded")
        self._schedule_unload(managed)
        return model

    def _load_blocking(self, name: str) -> LoadedModel:
        path = self._resolver(name, self.cache_dir)
        _LOGGER.info("Loading model %s from %s", name, path)
        self.models[name].path = path
        return self.backend.load(path)

    def _notify(self, managed: ManagedModel, what: str) -> None:
        if self.on_change is not None:
            self.on_change(managed, what)

    @asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[LoadedModel]:
        """Hold the model loaded for the body; loads it first if needed."""
        managed = self.models[name]
        managed.users += 1
        self._cancel_unload(managed)
        try:
            model = managed.model
            if managed.state is not ModelState.LOADED or model is None:
                model = await asyncio.shield(self._ensure_loading(managed))
            managed.last_used = time.time()
            yield model
        finally:
            managed.users -= 1
            managed.idle_since = time.monotonic()
            managed.last_used = time.time()
            if managed.unload_pending and managed.users == 0:
                self._spawn_expire(managed)
            else:
                self._schedule_unload(managed)

    def _cancel_unload(self, managed: ManagedModel) -> None:
        if managed.unload_timer is not None:
            managed.unload_timer.cancel()
            managed.unload_timer = None

    def _schedule_unload(self, managed: ManagedModel) -> None:
        self._cancel_unload(managed)
        if managed.ttl > 0 and managed.users == 0 and managed.state is ModelState.LOADED:
            loop = asyncio.get_running_loop()
            managed.unload_timer = loop.call_later(managed.ttl, self._spawn_expire, managed)

    def _spawn_expire(self, managed: ManagedModel) -> None:
        task = asyncio.get_running_loop().create_task(self._expire(managed))
        self._expiring.add(task)  # a task nobody references may be collected mid-flight
        task.add_done_callback(self._expiring.discard)

    async def _expire(self, managed: ManagedModel) -> None:
        if managed.users == 0 and managed.state is ModelState.LOADED:
            if managed.unload_pending:
                _LOGGER.info("Model %s: last request done, unloading as asked", managed.name)
            else:
                _LOGGER.info("Model %s idle for %.0f s: unloading", managed.name, managed.ttl)
            await self._unload(managed)

    async def unload(self, name: str | None = None) -> list[str]:
        """Unload one model (or all) now; the names unloaded.

        A model that is decoding is marked ``unload_pending`` instead and unloaded as soon as its
        last request ends, so nobody's answer is lost.
        """
        targets = [self.models[name]] if name is not None else list(self.models.values())
        done = []
        for managed in targets:
            if managed.state is not ModelState.LOADED:
                continue
            if managed.users:
                managed.unload_pending = True
                continue
            await self._unload(managed)
            done.append(managed.name)
        return done

    async def _unload(self, managed: ManagedModel) -> None:
        self._cancel_unload(managed)
        managed.unload_pending = False
        model, managed.model = managed.model, None
        managed.state = ModelState.UNLOADED
        managed.load_task = None
        if model is not None:
            await asyncio.get_running_loop().run_in_executor(self._loader, model.unload)
        self._notify(managed, "unloaded")

    async def close(self) -> None:
        """Unload everything and stop the loader thread (waits for a load in progress)."""
        self._closed = True
        for managed in self.models.values():
            self._cancel_unload(managed)
            if managed.model is not None:
                await self._unload(managed)
        await asyncio.to_thread(self._loader.shutdown, wait=True, cancel_futures=True)
