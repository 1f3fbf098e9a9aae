"""The one path every front door takes: admit, decode, run on the worker pool, cancel.

Wyoming, the OpenAI HTTP API and the WebSocket all call ``Engine``; it alone owns the inference
thread pool, so nothing blocking ever runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np

from . import audio as audio_mod
from . import malloc
from .backends.base import (
    SAMPLE_RATE,
    CancelToken,
    LoadedModel,
    Result,
    Score,
    Scorer,
    Segment,
    TranscribeOptions,
)
from .backends.select import Selection
from .commands.assist import Assist
from .commands.home import Home
from .commands.matcher import COMMAND_SECONDS, Commands, Match, choose
from .config import Config
from .errors import Busy, ModelNotFound, OutOfMemory, is_out_of_memory
from .hass_names import HassNames
from .metrics import Metrics, gauge
from .models.manager import ModelManager, ModelState
from .request import TranscriptionRequest, check_language

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
AUDIO_THREADS = 2  # each job is milliseconds long; two keep one slow client from stalling others

# OpenAI's model names: clients written for OpenAI send these; they mean "the default model".
OPENAI_MODEL_ALIASES = frozenset(
    {
        "whisper-1",
        "gpt-4o-transcribe",
        "gpt-4o-mini-transcribe",
        "gpt-4o-mini-transcribe-2025-03-20",
        "gpt-4o-transcribe-diarize",
        "whisper-large-v3",  # what the reference server maps to its default, too
    }
)


class Phase(str, enum.Enum):  # noqa: UP042 (str() keeps the member name)
    """Where the process is in its life, as a load balancer needs to know it (``/ready``)."""

    STARTING = "starting"  # the ports are not all open yet
    SERVING = "serving"
    DRAINING = "draining"  # a stop signal came: finish what is in flight, take nothing new


# Why a server is not ready, in the order they are checked; "ready" when none applies.
NOT_READY = ("draining", "starting", "loading", "model_error", "busy")


@dataclass
class EngineStats:
    """Streaming counters shown in /health (request counts and times live in Metrics)."""

    early_decodes: int = 0  # streaming: decodes started during a pause
    early_hits: int = 0  # ... whose result answered the utterance at once
    partials: int = 0  # WebSocket partial results sent
    encoder_fallbacks: int = 0  # fitted encoder windows redone at 30 s (all models)


class Engine:
    def __init__(self, config: Config, manager: ModelManager, selection: Selection) -> None:
        self.config = config
        self.manager = manager
        self.selection = selection
        self._pool = ThreadPoolExecutor(config.max_concurrency, thread_name_prefix="inference")
        # Audio handling that must not wait behind a decode, nor run on the loop: upload spooling,
        # PCM conversion and resampling, the streams' voice activity detection, the idle trim.
        self._audio = ThreadPoolExecutor(AUDIO_THREADS, thread_name_prefix="audio")
        self._in_flight: dict[str, int] = dict.fromkeys(manager.models, 0)
        self._answering = 0
        self.phase = Phase.STARTING  # set by the server: SERVING once listening, DRAINING on stop
        self.stats = EngineStats()
        self.names: HassNames | None = None  # Home Assistant's names, when the server reads them
        self.assist = Assist()  # Home Assistant's command sentences, per language
        # Utterances being received (streaming.Stream registers itself until it finishes).
        self.streams: weakref.WeakSet[Any] = weakref.WeakSet()
        self.metrics = Metrics()
        self.metrics.add_live(self._live_metrics)
        manager.on_change = self.metrics.on_model_change
        for name in manager.models:  # zero from the start, so a dashboard sees the series
            self.metrics.encoder_fallbacks.labels(name)

    # -- requests -------------------------------------------------------------------------------

    def model_name(self, requested: str | None) -> str:
        """Map a client's model name onto a served model; ModelNotFound for anything else."""
        if requested and requested in self.manager:
            return requested
        if requested and requested.startswith("whisper-") and requested[8:] in self.manager:
            return requested[8:]  # "whisper-small" for a served "small"
        if not requested or requested in OPENAI_MODEL_ALIASES:
            return self.config.default_model
        served = ", ".join(self.manager.models)
        raise ModelNotFound(
            f"The model '{requested}' does not exist or is not served here; served models: "
            f"{served} (or 'whisper-1' for the default)",
            param="model",
        )

    def options(self, **overrides: Any) -> TranscribeOptions:
        """Decoding options with the server's defaults (beam size, default language) applied."""
        base = TranscribeOptions(beam_size=self.config.beam_size, language=self.config.language)
        values = {k: v for k, v in overrides.items() if v is not None}
        return replace(base, **values)

    def assist_names(self) -> tuple[str, ...]:
        """Home Assistant's names for a request that brings none (empty when not read)."""
        return self.names.names if self.names is not None else ()

    def home(self, names: tuple[str, ...] | list[str] = ()) -> Home:
        """The names a request's commands are matched against: its own, else Home Assistant's."""
        if names:
            return Home.from_names(names)
        return self.names.home if self.names is not None else Home()

    async def as_command(
        self,
        text: str,
        language: str | None,
        home: Home,
        audio: np.ndarray | None = None,
        model: str | None = None,
    ) -> str:
        """``text``, or the Home Assistant command it nearly is (commands.py); with the request's
        ``audio`` and ``model``, the command among the near ones that the audio says. Never waits
        for the sentences to load: until they are, the words go out as heard."""
        if self.config.no_assist_commands or not home or not text.strip():
            return text
        commands = self.assist.get(language)
        if commands is None:
            return text
        if audio is None or model is None or audio.shape[0] > COMMAND_SECONDS * SAMPLE_RATE:
            match = await self.run_audio(commands.match, text, home)
        else:
            async with self.manager.use(model):  # (held until the last forced pass)
                match = await self._heard_as(commands, text, home, audio, model, language)
        self.metrics.assist_commands.labels(match.outcome).inc()
        if match.outcome == "rewritten":
            _LOGGER.debug("Heard %r, answered the command %r (%s)", text, match.text, match.intent)
        return match.text

    async def _heard_as(
        self,
        commands: Commands,
        text: str,
        home: Home,
        audio: np.ndarray,
        model: str,
        language: str | None,
    ) -> Match:
        """The command ``text`` nearly is, by its words; when they are unsure, the command among
        those near them that the audio says, or the words as heard.

        The audio is encoded and the words as heard scored on an idle worker while the words are
        matched (a third of commands need it, and then it is ready; for the rest an idle worker
        spent tens of ms), else while the near commands are found.
        """
        listening = self._listen(model, audio, language, text) if self.has_idle_worker else None
        match = await self.run_audio(commands.match, text, home)
        if match.outcome != "heard":  # (a rewrite by the words alone is sure: its margins say so)
            return match
        listening = listening or self._listen(model, audio, language, text)
        alternatives = await self.run_audio(commands.alternatives, text, home, match)
        if not alternatives:
            return match
        heard = await listening
        if heard is None:
            return match
        scorer, own = heard
        scores = await _run(self._pool, scorer, [a.text for a in alternatives])
        return choose(match, alternatives, [own, *scores])

    def _listen(
        self, model: str, audio: np.ndarray, language: str | None, text: str
    ) -> asyncio.Future[tuple[Scorer, Score] | None]:
        """The audio encoded for forced passes, and ``text`` scored against it, on a worker
        (None when the backend cannot score); the model held until then, even when the answer
        no longer waits for it."""

        async def listen() -> tuple[Scorer, Score] | None:
            async with self.manager.use(model) as loaded:
                return await _run(self._pool, _scored, loaded, audio, language, text)

        job = asyncio.ensure_future(listen())
        job.add_done_callback(_unheeded)
        return job

    def request_options(self, request: TranscriptionRequest, **overrides: Any) -> TranscribeOptions:
        """The decoding options of a validated request (``overrides`` are the door's own)."""
        asked = {
            "language": request.language,
            "task": request.task,
            "initial_prompt": request.prompt,
            "hotwords": request.hotwords or None,
            "temperature": request.temperature,
            "word_timestamps": request.word_timestamps,
        }
        return self.options(**{**asked, **overrides})

    @property
    def busy(self) -> bool:
        """True while any request is admitted, or its answer is still being written."""
        return self._answering > 0 or any(self._in_flight.values())

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

    @property
    def has_idle_worker(self) -> bool:
        """True when a new decode would start at once instead of waiting in the queue.

        Optional work (streaming's early decodes and partials) starts only then, so it never
        delays a request that someone is waiting for.
        """
        return sum(self._in_flight.values()) < self.config.max_concurrency

    @property
    def speakers(self) -> int:
        """Streams whose speaker has started talking and whose answer is not given yet."""
        return sum(1 for stream in list(self.streams) if stream.heard_speech)

    def queue_depth(self, model: str) -> int:
        return self._in_flight.get(model, 0)

    @property
    def capacity(self) -> int:
        """Requests one model may have in flight: the running ones plus the waiting queue."""
        return self.config.max_concurrency + self.config.max_queue

    def check_capacity(self, model: str) -> None:
        """Busy at once when the model's queue is full.

        Streaming front doors call this when a request starts, so a client is refused before it
        sends (and we buffer) its audio; ``admit`` checks again when the decode is due.
        """
        if self._in_flight[model] >= self.capacity:
            self.metrics.rejected.labels(model).inc()
            raise Busy(
                f"model {model!r} has {self._in_flight[model]} requests in flight "
                f"(limit {self.capacity}); retry shortly",
                retry_after=1,
            )

    def readiness(self) -> str:
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
        default = self.manager.models[self.config.default_model]
        if default.state is ModelState.ERROR:
            return "model_error"
        if default.loads == 0:
            return "loading"
        if self._in_flight[default.name] >= self.capacity:
            return "busy"
        return "ready"

    @contextmanager
    def admit(self, model: str) -> Iterator[None]:
        """Hold a place in the model's queue; Busy at once when it is full."""
        self.check_capacity(model)
        self._in_flight[model] += 1
        try:
            yield
        finally:
            self._in_flight[model] -= 1
            if not any(self._in_flight.values()):  # idle: give the decode's scratch memory back
                with contextlib.suppress(RuntimeError):  # no loop, or it is shutting down
                    asyncio.get_running_loop().run_in_executor(self._audio, malloc.trim)

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (decoding audio) on the worker pool."""
        return await _run(self._pool, fn, *args)

    async def run_audio(self, fn: Callable[..., T], *args: Any) -> T:
        """Run short blocking audio work (a chunk, a file write, a VAD pass) off the loop."""
        return await _run(self._audio, fn, *args)

    async def decode_file(self, path: str) -> np.ndarray:
        """An upload's samples, decoded on the worker pool no further than --max-audio-seconds
        (TooLarge as soon as it is known to be longer)."""
        limit = int(self.config.max_audio_seconds * SAMPLE_RATE)
        return await self.run_blocking(audio_mod.decode_file, path, limit)

    async def transcribe(
        self,
        samples: np.ndarray,
        options: TranscribeOptions,
        model: str,
        on_segment: Callable[[Segment], None] | None = None,
        *,
        token: CancelToken | None = None,
    ) -> Result:
        """Decode 16 kHz mono float32 with a served model; call inside ``admit``.

        ``on_segment`` is called on the event loop as each segment is final. If the caller is
        cancelled (its client went away), the decode stops at the next segment. ``token`` says
        what kind of work this is (a speculative or live decode, see ``CancelToken``); the
        engine cancels it with the caller.
        """
        loop = asyncio.get_running_loop()
        token = token or CancelToken()
        relay: Callable[[Segment], None] | None = None
        if on_segment is not None:
            callback = on_segment

            def relay(segment: Segment) -> None:
                loop.call_soon_threadsafe(callback, segment)

        async with self.manager.use(model) as loaded:
            if not loaded.is_multilingual:  # a model whose name did not say it (a local dir)
                check_language(model, None, options.task, english_only=True)
            started = time.monotonic()
            future = loop.run_in_executor(
                self._pool, loaded.transcribe, samples, options, relay, token
            )
            try:
                result = await asyncio.shield(future)
            except asyncio.CancelledError:
                token.cancel()
                self.metrics.cancelled.labels(model).inc()
                # The model must stay loaded until the worker lets go of it.
                await asyncio.wait([future])
                if not future.cancelled():
                    future.exception()  # retrieved: what a decode nobody awaits raised is moot
                raise
            except Exception as err:
                if not is_out_of_memory(err):
                    raise
                _LOGGER.error("Decoding with %s ran out of memory: %s", model, err)
                raise OutOfMemory(
                    f"the server ran out of memory decoding with model {model!r}; retry later, "
                    "send shorter audio, or use a smaller model",
                ) from err
        elapsed = time.monotonic() - started
        m = self.metrics
        m.audio_seconds.labels(model).inc(result.duration)
        m.inference_seconds.labels(model).inc(elapsed)
        if result.encoder_fallbacks:
            m.encoder_fallbacks.labels(model).inc(result.encoder_fallbacks)
            self.stats.encoder_fallbacks += result.encoder_fallbacks
        if result.duration > 0:
            m.real_time_factor.labels(model).observe(elapsed / result.duration)
        _LOGGER.debug(
            "Transcribed %.2f s of audio with %s in %.3f s: %r",
            result.duration,
            model,
            elapsed,
            result.text,
        )
        return result

    def _live_metrics(self) -> list:
        states = {name: m.state for name, m in self.manager.models.items()}
        return [
            gauge(
                "whisper_queue_depth",
                "Requests admitted and not yet answered (running + waiting), per model",
                "model",
                {name: float(n) for name, n in self._in_flight.items()},
            ),
            gauge(
                "whisper_queue_capacity",
                "Requests a model may have in flight before new ones get 503 (workers + queue)",
                "model",
                dict.fromkeys(self._in_flight, float(self.capacity)),
            ),
            gauge(
                "whisper_model_loaded",
                "1 when the model is loaded, else 0",
                "model",
                {n: float(s is ModelState.LOADED) for n, s in states.items()},
            ),
            gauge(
                "whisper_model_error",
                "1 when the model's last load failed, else 0",
                "model",
                {n: float(s is ModelState.ERROR) for n, s in states.items()},
            ),
        ]

    async def close(self) -> None:
        """Wait for running decodes, then stop the worker threads."""
        for pool in (self._pool, self._audio):
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


async def _run(pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
    """``fn`` on ``pool``; running out of memory (no room even for the pool's next thread) is
    the server's condition, a 503 on every front door, not a bug."""
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        _LOGGER.error("Out of memory running %s: %s", getattr(fn, "__qualname__", fn), err)
        raise OutOfMemory("the server is out of memory; retry later") from err


def _scored(
    loaded: LoadedModel, audio: np.ndarray, language: str | None, text: str
) -> tuple[Scorer, Score] | None:
    """Blocking: the audio encoded once, and the words as heard scored against it."""
    scorer = loaded.scorer(audio, language)
    return None if scorer is None else (scorer, scorer([text])[0])


def _unheeded(job: asyncio.Future[Any]) -> None:
    """A speculative job nobody awaited: its failure is nobody's error, only a debug line."""
    if not job.cancelled() and (err := job.exception()) is not None:
        _LOGGER.debug("Scoring the audio failed: %s", err)
