"""The one path every front door takes: admit, decode, run on the worker pool, cancel.

Wyoming, the OpenAI HTTP API, the streaming WebSocket and Realtime all call ``Engine``; it alone
owns the inference and audio pools (its parts, admission and the command step, get its runners),
so nothing blocking ever runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np

from . import audio as audio_mod
from . import malloc
from .admission import Admission
from .assist_commands import AssistCommands
from .backends.base import (
    SAMPLE_RATE,
    CancelToken,
    Result,
    Segment,
    TranscribeOptions,
)
from .backends.select import Selection
from .config import Config
from .errors import ModelNotFound, OutOfMemory, is_out_of_memory
from .hass_names import HassNames
from .languages import check_language
from .metrics import Metrics, gauge
from .models.manager import ModelManager, ModelState

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
AUDIO_THREADS = 2  # each job is milliseconds long; two keep one slow client from stalling others
# An idle server hands freed heap back only after audio longer than one encoder window: a
# command's scratch stays mapped for the next (malloc.IdleTrim).
TRIM_AFTER_SECONDS = 30.0

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


@dataclass
class EngineStats:
    """Streaming counters shown in /health (request counts and times live in Metrics)."""

    early_decodes: int = 0  # streaming: decodes started during a pause
    early_hits: int = 0  # ... whose result answered the utterance at once
    partials: int = 0  # live results handed to a client (every streaming door)
    encoder_fallbacks: int = 0  # fitted encoder windows redone at 30 s (all models)


class Engine:
    def __init__(
        self,
        config: Config,
        manager: ModelManager,
        selection: Selection,
        names: HassNames | None = None,
    ) -> None:
        self.config = config
        self.manager = manager
        self.selection = selection
        self._pool = ThreadPoolExecutor(config.max_concurrency, thread_name_prefix="inference")
        # Audio handling that must not wait behind a decode, nor run on the loop: upload spooling,
        # PCM conversion and resampling, the streams' voice activity detection, the idle trim.
        self._audio = ThreadPoolExecutor(AUDIO_THREADS, thread_name_prefix="audio")
        self.metrics = Metrics()
        self._idle_trim = malloc.IdleTrim(int(TRIM_AFTER_SECONDS * SAMPLE_RATE))
        self.admission = Admission(
            manager.models,
            config.max_concurrency,
            config.max_queue,
            on_refused=lambda model: self.metrics.rejected.labels(model).inc(),
            on_idle=self._trim,
        )
        self.assist = AssistCommands(
            not config.no_assist_commands,
            manager,
            self.admission,
            self.metrics,
            self.run_on_workers,
            self.run_audio,
            names,
        )
        self.stats = EngineStats()
        # Utterances being received (streaming.Stream registers itself until it finishes).
        self.streams: weakref.WeakSet[Any] = weakref.WeakSet()
        self.metrics.add_live(lambda: _gauges(manager, self.admission))
        manager.on_change = self.metrics.on_model_change
        for name in manager.models:  # zero from the start, so a dashboard sees the series
            self.metrics.encoder_fallbacks.labels(name)

    # -- models: what the doors show of them ----------------------------------------------------

    @property
    def served(self) -> list[str]:
        """The served models' names."""
        return list(self.manager.models)

    @property
    def backend_name(self) -> str:
        return self.manager.backend.name

    @property
    def encoder_window(self) -> str:
        """The encoder window the backend runs ("auto" or "full"; mlx: "full")."""
        return self.manager.backend.encoder_window

    def model_status(self, name: str | None = None) -> list[dict[str, Any]]:
        """Each served model's state (or the one named): loaded, loading, unloaded, error."""
        return [s for s in self.manager.status() if name is None or s["name"] == name]

    async def unload(self, name: str | None = None) -> list[str]:
        """Unload one served model (a name ``model_name`` gave) or, with None, every one."""
        return await self.manager.unload(name)

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

    @property
    def speakers(self) -> int:
        """Streams whose speaker has started talking and whose answer is not given yet."""
        return sum(1 for stream in list(self.streams) if stream.heard_speech)

    def readiness(self) -> str:
        """Whether a load balancer should send this server work (Admission.readiness)."""
        return self.admission.readiness(self.manager.models[self.config.default_model])

    def _trim(self) -> None:
        """The last request left: give a long decode's scratch memory back, off the loop."""
        if not self._idle_trim.due():
            return
        with contextlib.suppress(RuntimeError):  # no loop, or it is shutting down
            asyncio.get_running_loop().run_in_executor(self._audio, malloc.trim)

    async def run_on_workers(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work on the inference workers (a forced pass, reading an upload's
        audio): what must wait its turn behind decodes, not take a core from them."""
        return await _run(self._pool, fn, *args)

    async def run_audio(self, fn: Callable[..., T], *args: Any) -> T:
        """Run short blocking audio work (a chunk, a file write, a VAD pass) off the loop."""
        return await _run(self._audio, fn, *args)

    async def read_file(self, path: str) -> np.ndarray:
        """An upload's samples, read on the worker pool no further than --max-audio-seconds
        (TooLarge as soon as it is known to be longer)."""
        limit = int(self.config.max_audio_seconds * SAMPLE_RATE)
        samples = await self.run_on_workers(audio_mod.read_file, path, limit)
        self._idle_trim.note(samples.shape[0])
        return samples

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

        self._idle_trim.note(samples.shape[0])
        async with self.manager.use(model) as loaded:
            if not loaded.is_multilingual:  # a model whose name did not say it (a local dir)
                check_language(model, options.language, options.task, english_only=True)
            started = time.monotonic()
            future = loop.run_in_executor(
                self._pool, loaded.transcribe, samples, options, relay, token
            )
            # Retrieved whatever happens here (a caller cancelled twice stops waiting for it):
            # what a decode nobody awaits raised is moot, not an "exception never retrieved".
            future.add_done_callback(_retrieve)
            try:
                result = await asyncio.shield(future)
            except asyncio.CancelledError:
                token.cancel()
                self.metrics.cancelled.labels(model).inc()
                await asyncio.wait([future])  # the model stays loaded until the worker lets go
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

    async def close(self) -> None:
        """Wait for running decodes, then stop the worker threads."""
        for pool in (self._pool, self._audio):
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


def _gauges(manager: ModelManager, admission: Admission) -> list:
    """The queue and model-state gauges, read when /metrics is scraped."""
    states = {name: m.state for name, m in manager.models.items()}
    return [
        gauge(
            "whisper_queue_depth",
            "Requests admitted and not yet answered (running + waiting), per model",
            "model",
            {name: float(n) for name, n in admission.in_flight().items()},
        ),
        gauge(
            "whisper_queue_capacity",
            "Requests a model may have in flight before new ones get 503 (workers + queue)",
            "model",
            dict.fromkeys(manager.models, float(admission.capacity)),
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


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


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
