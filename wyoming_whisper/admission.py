"""Admission: each model's places (running and waiting), who is refused, and readiness.

One count per model of the requests admitted and not yet answered; a request past the workers
and the queue gets ``Busy`` (a 503, a Wyoming ``error``) at once instead of waiting unbounded.
The same counts say whether optional work (early and live decodes, the speculative encode of the
command step) may start, and what ``/ready`` tells a load balancer.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from .errors import Busy
from .models.manager import ModelState


class Phase(str, enum.Enum):  # noqa: UP042 (str() keeps the member name)
    """Where the process is in its life, as a load balancer needs to know it (``/ready``)."""

    STARTING = "starting"  # the ports are not all open yet
    SERVING = "serving"
    DRAINING = "draining"  # a stop signal came: finish what is in flight, take nothing new


# Why a server is not ready, in the order they are checked; "ready" when none applies.
NOT_READY = ("draining", "starting", "loading", "model_error", "busy")


class Loads(Protocol):
    """What readiness reads of the default model (the manager's ManagedModel)."""

    name: str
    state: ModelState
    loads: int


class Admission:
    """Places per model: ``workers`` decode at once, ``queue`` more wait, the rest are refused."""

    def __init__(
        self,
        models: Iterable[str],
        workers: int,
        queue: int,
        on_refused: Callable[[str], None],
        on_idle: Callable[[], None],
    ) -> None:
        self.workers = workers
        self.capacity = workers + queue  # requests one model may have in flight
        self._in_flight: dict[str, int] = dict.fromkeys(models, 0)
        self._answering = 0
        self._on_refused = on_refused  # (a metric)
        self._on_idle = on_idle  # the last request left: give scratch memory back
        self.phase = Phase.STARTING  # set by the server: SERVING once listening, DRAINING on stop

    def in_flight(self) -> dict[str, int]:
        """Requests admitted and not yet answered, per model."""
        return dict(self._in_flight)

    def queue_depth(self, model: str) -> int:
        return self._in_flight.get(model, 0)

    @property
    def has_idle_worker(self) -> bool:
        """True when a new decode would start at once instead of waiting in the queue.

        Optional work (streaming's early decodes and partials) starts only then, so it never
        delays a request that someone is waiting for.
        """
        return sum(self._in_flight.values()) < self.workers

    @property
    def busy(self) -> bool:
        """True while any request is admitted, or its answer is still being written."""
        return self._answering > 0 or any(self._in_flight.values())

    def check_capacity(self, model: str) -> None:
        """Busy at once when the model's queue is full.

        Streaming front doors call this when a request starts, so a client is refused before it
        sends (and we buffer) its audio; ``admit`` checks again when the decode is due.
        """
        if self._in_flight[model] >= self.capacity:
            self._on_refused(model)
            raise Busy(
                f"model {model!r} has {self._in_flight[model]} requests in flight "
                f"(limit {self.capacity}); retry shortly",
                retry_after=1,
            )

    @contextmanager
    def admit(self, model: str) -> Iterator[None]:
        """Hold a place in the model's queue; Busy at once when it is full."""
        self.check_capacity(model)
        self._in_flight[model] += 1
        try:
            yield
        finally:
            self._in_flight[model] -= 1
            if not any(self._in_flight.values()):
                self._on_idle()

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Held by a front door from the start of a request's answer until its last byte is sent.

        The decode ends before the answer is written (a Wyoming transcript after its chunks, a
        WebSocket's final message), so a shutdown that waited only for decodes could cut the
        client off between the two.
        """
        self._answering += 1
        try:
            yield
        finally:
            self._answering -= 1

    def readiness(self, default: Loads) -> str:
        """Whether a load balancer should send this server work: "ready", or why not (NOT_READY).

        Not ready while starting, once a stop signal came, until the default model has loaded
        for the first time, while its last load failed, and while its queue is full (a request
        would get 503). A model unloaded after its idle TTL stays ready: the next request loads
        it again, as on a single server, and replicas must not all drop out when traffic is low.
        """
        if self.phase is Phase.DRAINING:
            return "draining"
        if self.phase is Phase.STARTING:
            return "starting"
        if default.state is ModelState.ERROR:
            return "model_error"
        if default.loads == 0:
            return "loading"
        if self._in_flight[default.name] >= self.capacity:
            return "busy"
        return "ready"
