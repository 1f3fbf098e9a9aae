"""When a stream decodes: an early decode in each pause, live decodes while speech goes on, and
the final, which takes the early decode's result when it covers exactly the final audio."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..backends.base import SAMPLE_RATE, CancelToken, Result, Segment, TranscribeOptions
from ..engine import Engine
from ..errors import WhisperError
from .background import Pending, cancelled, decode, retrieve
from .live import LiveDecodes
from .settings import StreamSettings
from .utterance import UtteranceAudio
from .vad import final_end

_LOGGER = logging.getLogger(__package__)

EARLY_MAX_SECONDS = 30.0  # no early decodes of longer audio: one decode window, bounded cost


class Decodes:
    """The early decode, the live decodes' scheduling and the final of one utterance.

    Early decodes run as background tasks through the engine (admission slot held while
    running); they are cancelled when superseded, when the final is requested, or by ``close``.
    """

    def __init__(
        self,
        engine: Engine,
        model: str,
        options: TranscribeOptions,
        settings: StreamSettings,
        audio: UtteranceAudio,
        live: LiveDecodes,
    ) -> None:
        self.engine = engine
        self.model = model
        self.options = options
        self.settings = settings
        self._audio = audio
        self._live = live
        self._trail = int(settings.trail * SAMPLE_RATE)
        self._early: Pending | None = None
        self.early_used = False

    def schedule(self) -> None:
        """After new audio: start, supersede or keep the early decode; maybe a live decode."""
        tracker = self._audio.tracker
        target = final_end(tracker, tracker.position, self._trail)
        if self._early is not None and (tracker.voiced or self._early.end != target):
            self._supersede_early()
        if self.settings.early_decoding and self._early is None:
            pause = max(self.settings.early_pause, self.settings.trail) * SAMPLE_RATE
            silence = tracker.silence_after_speech(tracker.position)
            short = target <= EARLY_MAX_SECONDS * SAMPLE_RATE
            own_live = self._live.running
            free = self.engine.admission.has_idle_worker or own_live
            if silence >= pause and short and free and self._audio.paced:
                self._live.cancel()  # the early decode is worth more than a live decode
                token = CancelToken(speculative=True)
                task = asyncio.create_task(self._early_decode(target, token))
                task.add_done_callback(retrieve)
                self._early = Pending(target, task, token)
                self.engine.stats.early_decodes += 1
                _LOGGER.debug("Early decode of %.2f s started", target / SAMPLE_RATE)
        early_running = self._early is not None and not self._early.task.done()
        self._live.maybe_start(early_running=early_running)

    def _supersede_early(self) -> None:
        """New speech after the point the early decode covered: it is not the final any more.
        While live text is wanted its decode, already running (it cannot be stopped), goes on as
        a live decode of the words so far; otherwise it is cancelled (if it still waits for a
        worker, it never runs)."""
        early, self._early = self._early, None
        assert early is not None
        if not self._live.wanted or early.task.done():
            early.task.cancel()
            return
        early.token.live = True  # a hypothesis now: not worth the encoder's 30 s pass
        self._live.adopt(early.task, early.end)

    async def _early_decode(self, end: int, token: CancelToken) -> Result:
        """A speculative decode of the final audio; with live text, also a hypothesis that may
        confirm what the last live decode guessed (it decodes the whole utterance)."""
        result = await self._decode(end, token=token)
        await self._live.confirm_whole(result)
        return result

    async def _decode(
        self,
        end: int,
        on_segment: Callable[[Segment], None] | None = None,
        *,
        token: CancelToken | None = None,
    ) -> Result:
        audio = self._audio.copy(end)
        return await decode(self.engine, self.model, audio, self.options, on_segment, token=token)

    async def final(self, on_segment: Callable[[Segment], None] | None = None) -> Result:
        """The final result (the stream has ended its audio): the early decode's when it covers
        exactly the final audio.

        ``on_segment`` sees segments as a decode started here firms them up; an early result
        arrives whole.
        """
        self._live.cancel()
        await self._audio.catch_up_vad()
        end = final_end(self._audio.tracker, self._audio.samples, self._trail)
        early, self._early = self._early, None
        if early is not None and early.end == end:
            try:
                result: Result | None = await asyncio.shield(early.task)
            except asyncio.CancelledError:
                if not early.task.cancelled():  # we are cancelled, not the early decode
                    early.task.cancel()
                    raise
                result = None
            except WhisperError:
                result = None  # e.g. no admission slot then: decode again, report what happens
            if result is not None:
                self.early_used = True
                self.engine.stats.early_hits += 1
                return result
        # The final is admitted like any request: first let this stream's own background
        # decodes, cancelled, give back their admission slots (a decode in a worker runs on to
        # the end of its window; the final would wait behind it for the worker anyway).
        await cancelled([t for t in (self._live.task, early.task if early else None) if t])
        return await self._decode(end, on_segment=on_segment)

    async def close(self) -> None:
        """Cancel background work (the client went away or the utterance failed)."""
        tasks = [t for t in (self._live.task, self._early.task if self._early else None) if t]
        self._early = None
        await cancelled(tasks)
