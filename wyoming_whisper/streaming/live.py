"""Live text: confirmed words while the speaker talks, and what a door has sent of them.

A *live decode* decodes the stream's open window again as speech goes on; what two consecutive
decodes agree on is confirmed (``agreement.py``) and told to the door as a ``Partial``. The door
sends the newly confirmed words, and after the final only its ``rest`` (``LiveText``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from typing import Any, TypeVar

from ..agreement import Agreement, piece, rest
from ..backends.base import SAMPLE_RATE, CancelToken, Result, Segment, TranscribeOptions
from ..engine import Engine
from ..errors import WhisperError
from ..words import split
from .background import decode, retrieve
from .utterance import UtteranceAudio

_LOGGER = logging.getLogger(__package__)

LIVE_EVERY_SECONDS = 0.5  # a live decode per this much new audio holding speech
LIVE_FIRST_SECONDS = 0.5  # speech heard before the first live decode
PARTIAL_MIN_SECONDS = 1.0  # a decode of less speech is a guess ("n." for "And so"): not shown
TRIM_SECONDS = 10.0  # a longer window starts again after its last confirmed segment
MAX_OPEN_TAIL_SECONDS = 20.0  # past this, the window moves past every segment but the last
PROMPT_CHARS = 200  # confirmed text before the window, handed to a live decode as context


@dataclass(frozen=True)
class Partial:
    """What a live decode tells a client while the speaker talks."""

    text: str  # the confirmed words, then the latest decode's unconfirmed rest
    committed: str  # every word confirmed so far: never taken back
    delta: str  # the newly confirmed piece, to append to what came before ("" when none)


PartialCallback = Callable[[Partial], Awaitable[None]]
T = TypeVar("T")


class LiveDecodes:
    """The live decodes of one utterance and the agreement between them.

    A live decode is optional work: it starts only on an idle worker, never queues behind one
    still running, and gives way to the early decode (the stream schedules both).
    """

    def __init__(
        self,
        engine: Engine,
        model: str,
        options: TranscribeOptions,
        audio: UtteranceAudio,
        on_partial: PartialCallback | None,
    ) -> None:
        self.engine = engine
        self.model = model
        self.options = options
        self.on_partial = on_partial
        self._audio = audio
        self.task: asyncio.Task[Any] | None = None  # the running live decode
        self.mark = 0  # samples when the last live decode started
        self._window = 0  # where the audio of the next live decode starts (samples)
        self.agreement = Agreement()

    @property
    def wanted(self) -> bool:
        """Whether live text is wanted now: never once more people talk than there are workers
        (their finals come first)."""
        if self.on_partial is None or self._audio.ended:
            return False
        return self.engine.speakers <= self.engine.config.max_concurrency

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def cancel(self) -> None:
        if self.running:
            assert self.task is not None
            self.task.cancel()

    def shift(self, samples: int) -> None:
        """``samples`` were dropped from the front of the audio (pre-roll)."""
        self.mark = max(0, self.mark - samples)

    def adopt(self, task: asyncio.Task[Any], end: int) -> None:
        """A superseded early decode of ``audio[:end]`` goes on as a live decode."""
        self.task = task
        self.mark = max(self.mark, end)

    def maybe_start(self, *, early_running: bool) -> None:
        """Start a live decode if there is new speech to decode and a worker to spare."""
        if not self.wanted:
            return
        if self.running:
            return  # never queue behind a running live decode: skip this one
        if early_running:
            return
        if not self.engine.admission.has_idle_worker:
            return  # optional work: never delays a final or another client
        end = self._audio.samples
        tracker = self._audio.tracker
        if not tracker.voiced:
            return  # a pause may have begun: the early decode will want the worker
        start = tracker.speech_start
        if start is None or tracker.speech_end <= self.mark:
            return  # no new speech since the last live decode
        if end - self.mark < LIVE_EVERY_SECONDS * SAMPLE_RATE:
            return
        if end - start < LIVE_FIRST_SECONDS * SAMPLE_RATE:
            return
        self.mark = end
        self.task = asyncio.create_task(self._live_decode(end))
        self.task.add_done_callback(retrieve)

    def live_options(self) -> TranscribeOptions:
        """Cheaper settings for live decodes: greedy, no fallback, confirmed text as context."""
        before = " ".join(self.agreement.before)
        prompt = before[-PROMPT_CHARS:].strip() or self.options.initial_prompt
        return replace(
            self.options,
            beam_size=1,
            temperature=(0.0,),
            condition_on_previous_text=False,
            word_timestamps=False,
            initial_prompt=prompt,
        )

    async def _live_decode(self, end: int) -> None:
        """Decode the window, confirm what agrees with the decode before, tell the client."""
        start = self._window
        try:
            result = await decode(
                self.engine,
                self.model,
                self._audio.window(start, end),
                self.live_options(),
                token=CancelToken(speculative=True, live=True),
            )
        except WhisperError as err:  # best effort: the final reports real failures
            _LOGGER.debug("Live decode skipped: %s", err.message)
            return
        if self._audio.ended:
            return
        new = self.agreement.update(split(result.text))
        if self.agreement.covered is not None:
            self._move_window(result.segments, self.agreement.covered, end - start)
        shown = end - (self._audio.tracker.speech_start or 0) >= PARTIAL_MIN_SECONDS * SAMPLE_RATE
        if new or shown:
            await self._tell(new)

    async def confirm_whole(self, result: Result) -> None:
        """An early decode confirms its words: it decodes the whole utterance up to a pause of
        the speaker's (``Agreement.update``'s ``paused``)."""
        if self.on_partial is not None and not self._audio.ended:
            new = self.agreement.update(split(result.text), whole=True, paused=True)
            if new:
                await self._tell(new)

    async def _tell(self, new: list[str]) -> None:
        """Hand the client its partial (``new``: the words just confirmed)."""
        assert self.on_partial is not None
        committed = self.agreement.text
        first = len(self.agreement.confirmed) == len(new)
        text = " ".join(w for w in (committed, " ".join(self.agreement.pending)) if w)
        self.engine.stats.partials += 1
        await self.on_partial(Partial(text, committed, piece(new, first=first)))

    def _move_window(self, segments: Sequence[Segment], covered: int, samples: int) -> None:
        """Start the next live decode after the last segment whose words are all confirmed,
        once the window is long (live decodes stay short); a very long window moves past every
        segment but the last whatever was confirmed."""
        if samples < TRIM_SECONDS * SAMPLE_RATE or len(segments) < 2:
            return
        counts = list(accumulate(len(split(s.text)) for s in segments))
        cut = None
        for i in range(len(segments) - 1):
            if counts[i] <= covered:
                cut = i
        if cut is None and samples > MAX_OPEN_TAIL_SECONDS * SAMPLE_RATE:
            cut = len(segments) - 2
        if cut is None:
            return
        self._window += int(segments[cut].end * SAMPLE_RATE)
        self.agreement.forget(counts[cut])


class LiveText:
    """What a door has sent of one utterance's live text, and what of the final is left to send.

    Every door that sends confirmed words while the speaker talks (Wyoming's transcript-chunks,
    the Realtime API's deltas) sends after the final only its text after those words
    (``agreement.rest``). The stream is built before the door's record of the utterance that
    holds it, so the stream is handed ``told`` and the door ``listen``s once its record exists
    (before any audio, hence before any partial).

    ``take`` records a partial's new words as sent and gives the piece to send: call it in the
    statement that writes the piece. A write buffers its bytes before its first await, so what
    ``sent`` says is what the client gets, even if the answer cancels the write.
    """

    def __init__(self) -> None:
        self.sent: list[str] = []  # confirmed words sent while the speaker talked
        self._listener: Callable[[Any, Partial], Awaitable[None]] | None = None
        self._record: weakref.ref[Any] | None = None

    def listen(self, listener: Callable[[T, Partial], Awaitable[None]], record: T) -> None:
        """Hand each partial to ``listener`` with the door's ``record`` of the utterance.

        The record holds the stream, which holds ``told``: held here weakly, it is freed (with
        its audio) as soon as the door lets go of it, not at the next full garbage collection.
        """
        self._listener = listener
        self._record = weakref.ref(record)

    async def told(self, partial: Partial) -> None:
        """The stream's partial callback: hands the partial to the door's listener."""
        record = self._record() if self._record is not None else None
        if self._listener is not None and record is not None:
            await self._listener(record, partial)

    def take(self, partial: Partial) -> str:
        """The piece of ``partial`` to send now ("" when none), recorded as sent."""
        if partial.delta:
            self.sent.extend(split(partial.delta))
        return partial.delta

    def rest(self, final: str) -> str:
        """The final transcript after the words sent, as a piece to append ("" when none)."""
        return rest(final, self.sent)
