"""One utterance being received: audio in, voice activity, early decoding, partials, the final.

Both streaming front doors (Wyoming and the WebSocket) feed a ``Stream`` and ask it for the
final result. What "the final result" means is fixed here, so that an early decode and a decode
after the end of the stream see exactly the same samples:

    the final decode covers the audio from the start up to ``TRAIL_SECONDS`` after the end of the
    last speech the voice activity detector (Silero, as shipped with faster-whisper) heard
    (``ENDPOINT_TRAIL_SECONDS`` when the server ends the utterance itself); with no speech heard
    at all, the whole audio.

Silence after that point therefore cannot change the result, and a decode started during a pause
is the final answer as long as no new speech arrives before the end of the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from typing import Any

import numpy as np

from .agreement import Agreement, piece
from .audio import PcmConverter
from .backends.base import SAMPLE_RATE, CancelToken, Result, Segment, TranscribeOptions

# This imports faster_whisper here, on the main thread at start-up: importing it for the first
# time in two threads at once (a model load and a stream's VAD) can fail half-way.
from .backends.faster_whisper_internals import SileroSession
from .engine import Engine
from .errors import TooLarge, WhisperError
from .request import TranscriptionRequest, decode_options
from .words import split

_LOGGER = logging.getLogger(__name__)

WINDOW = 512  # Silero's window at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window Silero sees before each window
SPEECH_THRESHOLD = 0.5  # a window this likely to be speech starts (or continues) speech
HYSTERESIS = 0.15  # ... and one above it less this continues speech already under way
TRAIL_SECONDS = 0.3  # audio kept after the last speech: the final decode's end point
# ... and for an utterance the server ends itself after a set silence (VAD endpointing, the
# Realtime API's server VAD): its early decode starts after this much silence and must be done
# when the silence is complete, so the margin is shorter (same WER: docs/streaming.md).
ENDPOINT_TRAIL_SECONDS = 0.1
EARLY_MAX_SECONDS = 30.0  # no early decodes of longer audio: one decode window, bounded cost
LIVE_EVERY_SECONDS = 0.5  # a live decode per this much new audio holding speech
LIVE_FIRST_SECONDS = 0.5  # speech heard before the first live decode
PARTIAL_MIN_SECONDS = 1.0  # a decode of less speech is a guess ("n." for "And so"): not shown
TRIM_SECONDS = 10.0  # a longer window starts again after its last confirmed segment
MAX_OPEN_TAIL_SECONDS = 20.0  # past this, the window moves past every segment but the last
PROMPT_CHARS = 200  # confirmed text before the window, handed to a live decode as context
PREROLL_SECONDS = 1.0  # with VAD endpointing: silence kept before speech starts
SLICE_SAMPLES = 1 << 20  # a client's chunk is converted in pieces of about 65 s at 16 kHz
# Early decodes only pay off for audio that arrives at about the pace it plays. A recording sent
# in one burst ends before an early decode could finish, and a decode cannot be interrupted once
# started, so the final would wait behind it: none is started while the audio received is more
# than MAX_PACE times the wall-clock time since the first chunk, plus some client buffering.
MAX_PACE = 4.0
PACE_SLACK_SECONDS = 0.5

# Transcribe.vad_sensitivity -> seconds of silence that end an utterance (--vad-endpointing).
ENDPOINT_SECONDS = {"aggressive": 0.4, "default": 0.7, "relaxed": 1.2}


class SileroStream:
    """Silero VAD run window by window, keeping its recurrent state between calls.

    Feeding audio in any chunking gives exactly the probabilities of one call on the whole audio
    (faster-whisper's ``SileroVADModel``). Blocking (ONNX): call from a worker thread.
    """

    def __init__(self) -> None:
        self._silero = SileroSession()
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Speech probability of each whole window completed by ``samples``."""
        data = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        whole = data.shape[0] - data.shape[0] % WINDOW
        self._pending = data[whole:].copy()
        if not whole:
            return np.zeros(0, dtype=np.float32)
        windows = data[:whole].reshape(-1, WINDOW)
        before = np.concatenate([self._context[None, :], windows[:-1, -CONTEXT:]], axis=0)
        batch = np.ascontiguousarray(np.concatenate([before, windows], axis=1))
        probs = self._silero.run(batch)
        self._context = windows[-1, -CONTEXT:].copy()
        return probs


@dataclass
class SpeechTracker:
    """Where speech was heard, from per-window probabilities (pure; positions in samples).

    Hysteresis as in Silero's own segmentation: a window starts speech at SPEECH_THRESHOLD and
    continues it above the threshold less HYSTERESIS.
    """

    window: int = WINDOW
    threshold: float = SPEECH_THRESHOLD  # a client's own (the Realtime API's server_vad)
    position: int = 0  # samples covered by the windows seen so far
    speech_start: int | None = None  # first voiced window's start
    speech_end: int = 0  # end of the last voiced window
    voiced: bool = False  # whether the latest window was voiced

    def update(self, probs: Sequence[float]) -> None:
        for prob in probs:
            start = self.position
            self.position += self.window
            threshold = self.threshold - HYSTERESIS if self.voiced else self.threshold
            self.voiced = prob >= threshold
            if self.voiced:
                if self.speech_start is None:
                    self.speech_start = start
                self.speech_end = self.position

    @property
    def heard_speech(self) -> bool:
        return self.speech_start is not None

    def silence_after_speech(self, total: int) -> int:
        """Samples of non-speech since the last speech (0 before any speech or while voiced)."""
        if not self.heard_speech or self.voiced:
            return 0
        return max(0, total - self.speech_end)

    def shift(self, samples: int) -> None:
        """Forget ``samples`` from the front (only while no speech has been heard)."""
        assert not self.heard_speech
        self.position -= samples


def final_end(tracker: SpeechTracker, total: int, trail: int) -> int:
    """The sample count the final decode covers (see the module docstring)."""
    if not tracker.heard_speech:
        return total
    return min(total, tracker.speech_end + trail)


class ChunkText:
    """Cuts segment texts into transcript chunks whose concatenation is the stripped transcript.

    The transcript is ``"".join(segment texts).strip()``: leading whitespace of the first piece is
    dropped and trailing whitespace is held back until more text follows it.
    """

    def __init__(self) -> None:
        self._held = ""
        self._started = False

    def feed(self, text: str) -> str:
        if not self._started:
            text = text.lstrip()
            if not text:
                return ""
            self._started = True
        body = text.rstrip()
        if not body:
            self._held += text
            return ""
        piece = self._held + body
        self._held = text[len(body) :]
        return piece


@dataclass(frozen=True)
class StreamSettings:
    """How a stream decodes early, how it ends on its own, and how long it may grow."""

    early_decoding: bool = True
    early_pause: float = 0.3  # non-speech after speech that starts an early decode
    endpoint_silence: float | None = None  # end the utterance after this much silence
    max_seconds: float = 3600.0
    trail: float = TRAIL_SECONDS


@dataclass
class _Decode:
    """A background decode of ``audio[:end]``."""

    end: int
    task: asyncio.Task[Result]
    token: CancelToken


@dataclass(frozen=True)
class Partial:
    """What a live decode tells a client while the speaker talks."""

    text: str  # the confirmed words, then the latest decode's unconfirmed rest
    committed: str  # every word confirmed so far: never taken back
    delta: str  # the newly confirmed piece, to append to what came before ("" when none)


PartialCallback = Callable[[Partial], Awaitable[None]]


class Stream:
    """Audio of one utterance as it arrives; ``finish`` gives the final Result.

    Early decodes and partials run as background tasks through the engine (admission slot held
    while running); they are cancelled when superseded, when the final is requested, or by
    ``close`` when the client goes away.
    """

    def __init__(
        self,
        engine: Engine,
        model: str,
        options: TranscribeOptions,
        settings: StreamSettings,
        *,
        on_partial: PartialCallback | None = None,
    ) -> None:
        self.engine = engine
        self.model = model
        self.options = options
        self.settings = settings
        self.on_partial = on_partial
        self._buf = np.zeros(SAMPLE_RATE * 4, dtype=np.float32)
        self._len = 0
        self._vad: SileroStream | None = None
        self.tracker = SpeechTracker()
        self._trail = int(settings.trail * SAMPLE_RATE)
        self._early: _Decode | None = None
        self._partial: asyncio.Task[Any] | None = None  # the running live decode
        self._live_mark = 0  # samples when the last live decode started
        self._window = 0  # where the audio of the next live decode starts (samples)
        self.agreement = Agreement()
        self._finishing = False
        self._first_chunk_at: float | None = None
        self._vad_seen = 0  # samples the VAD has processed
        self.dropped = 0  # samples of silence dropped from the front (VAD endpointing)
        self.early_used = False
        engine.streams.add(self)

    @classmethod
    def open(
        cls,
        engine: Engine,
        request: TranscriptionRequest,
        *,
        endpoint_silence: float | None = None,
        on_partial: PartialCallback | None = None,
    ) -> Stream:
        """A stream for a validated request, with the server's streaming settings (both doors)."""
        config = engine.config
        ends_itself = endpoint_silence is not None
        settings = StreamSettings(
            early_decoding=not config.no_early_decoding,
            early_pause=ENDPOINT_TRAIL_SECONDS if ends_itself else config.early_decoding_pause,
            endpoint_silence=endpoint_silence,
            max_seconds=config.stream_seconds,
            trail=ENDPOINT_TRAIL_SECONDS if ends_itself else TRAIL_SECONDS,
        )
        options = decode_options(request, engine.options(), vad_filter=config.vad_filter)
        live = None if config.no_live_text else on_partial
        return cls(engine, request.model, options, settings, on_partial=live)

    # -- audio in -------------------------------------------------------------------------------

    @property
    def samples(self) -> int:
        return self._len

    @property
    def seconds(self) -> float:
        return self._len / SAMPLE_RATE

    @property
    def heard_speech(self) -> bool:
        return self.tracker.heard_speech

    @property
    def endpoint_reached(self) -> bool:
        """Speech, then ``endpoint_silence`` of non-speech (only with VAD endpointing)."""
        limit = self.settings.endpoint_silence
        if limit is None:
            return False
        silence = self.tracker.silence_after_speech(self.tracker.position)
        return silence >= max(limit, self.settings.trail) * SAMPLE_RATE

    def audio(self, end: int | None = None) -> np.ndarray:
        """A copy of the audio so far (up to ``end`` samples)."""
        return self._buf[: self._len if end is None else min(end, self._len)].copy()

    async def feed(self, converter: PcmConverter, data: bytes) -> None:
        """Append a client's bytes in ``converter``'s format: what they will become is checked
        against the stream's length first (a chunk declared at a low rate multiplies), then they
        are converted and resampled off the loop, in slices whose scratch memory stays small."""
        self.check_room(converter.output_length(len(data)))
        step = converter.slice_bytes(SLICE_SAMPLES)
        for start in range(0, len(data), step):
            await self.convert(converter.feed, data[start : start + step])

    async def convert(self, fn: Callable[..., np.ndarray], *args: Any) -> None:
        """Append what ``fn`` (a ``PcmConverter``'s feed or flush) makes of a client's bytes,
        converted and resampled off the loop (client bytes go through ``feed``)."""
        await self.append(await self.engine.run_audio(fn, *args))

    def check_room(self, samples: int) -> None:
        """TooLarge if ``samples`` more would make the stream longer than its limit: one rule for
        audio about to be converted and audio converted."""
        if self._len + samples > self.settings.max_seconds * SAMPLE_RATE:
            raise TooLarge(
                f"stream longer than {self.settings.max_seconds:.0f} s; audio dropped",
                param="audio",
            )

    async def append(self, samples: np.ndarray) -> None:
        """Add 16 kHz mono float32; runs the VAD off the loop, then schedules background work."""
        if self._finishing:
            raise RuntimeError("stream already finished")
        if samples.shape[0] == 0:
            return
        self.check_room(samples.shape[0])
        if self._first_chunk_at is None:
            self._first_chunk_at = time.monotonic()
        self._store(samples)
        if self.settings.endpoint_silence is None and not self.paced:
            return  # a burst: nothing to start early; the VAD catches up once, in finish()
        await self._catch_up_vad()
        if self.settings.endpoint_silence is not None:
            self._drop_preroll()
        self._schedule()

    async def _catch_up_vad(self) -> None:
        """Run the VAD (off the loop) over the audio it has not seen yet, in one call."""
        if self._vad_seen >= self._len:
            return
        if self._vad is None:
            self._vad = await self.engine.run_audio(SileroStream)
        fresh = self._buf[self._vad_seen : self._len].copy()
        self._vad_seen = self._len
        probs = await self.engine.run_audio(self._vad.process, fresh)
        self.tracker.update(probs.tolist())

    def _store(self, samples: np.ndarray) -> None:
        need = self._len + samples.shape[0]
        if need > self._buf.shape[0]:
            grown = np.zeros(max(need, self._buf.shape[0] * 2), dtype=np.float32)
            grown[: self._len] = self._buf[: self._len]
            self._buf = grown
        self._buf[self._len : need] = samples
        self._len = need

    def _drop_preroll(self) -> None:
        """Endpointing clients may stream silence forever: keep only a short pre-roll."""
        keep = int(PREROLL_SECONDS * SAMPLE_RATE)
        if self.tracker.heard_speech or self.tracker.position <= 2 * keep:
            return
        drop = self.tracker.position - keep
        self._buf[: self._len - drop] = self._buf[drop : self._len]
        self._len -= drop
        self._vad_seen -= drop
        self.dropped += drop
        self.tracker.shift(drop)
        self._live_mark = max(0, self._live_mark - drop)

    # -- background work ------------------------------------------------------------------------

    @property
    def paced(self) -> bool:
        """Whether the audio arrives at a streaming pace rather than in one burst."""
        if self._first_chunk_at is None:
            return False
        elapsed = time.monotonic() - self._first_chunk_at
        return self.seconds <= MAX_PACE * elapsed + PACE_SLACK_SECONDS

    def _schedule(self) -> None:
        target = final_end(self.tracker, self.tracker.position, self._trail)
        if self._early is not None and (self.tracker.voiced or self._early.end != target):
            self._supersede_early()
        if self.settings.early_decoding and self._early is None:
            pause = max(self.settings.early_pause, self.settings.trail) * SAMPLE_RATE
            silence = self.tracker.silence_after_speech(self.tracker.position)
            short = target <= EARLY_MAX_SECONDS * SAMPLE_RATE
            own_partial = self._partial is not None and not self._partial.done()
            free = self.engine.admission.has_idle_worker or own_partial
            if silence >= pause and short and free and self.paced:
                self._cancel_partial()  # the early decode is worth more than a partial
                token = CancelToken(speculative=True)
                task = asyncio.create_task(self._early_decode(target, token))
                task.add_done_callback(_retrieve)
                self._early = _Decode(target, task, token)
                self.engine.stats.early_decodes += 1
                _LOGGER.debug("Early decode of %.2f s started", target / SAMPLE_RATE)
        self._maybe_partial()

    def _supersede_early(self) -> None:
        """New speech after the point the early decode covered: it is not the final any more.
        While live text is wanted its decode, already running (it cannot be stopped), goes on as
        a live decode of the words so far; otherwise it is cancelled (if it still waits for a
        worker, it never runs)."""
        early, self._early = self._early, None
        assert early is not None
        if not self._live or early.task.done():
            early.task.cancel()
            return
        early.token.live = True  # a hypothesis now: not worth the encoder's 30 s pass
        self._partial = early.task
        self._live_mark = max(self._live_mark, early.end)

    def _cancel_partial(self) -> None:
        if self._partial is not None and not self._partial.done():
            self._partial.cancel()

    async def _early_decode(self, end: int, token: CancelToken) -> Result:
        """A speculative decode of the final audio; with live text, also a hypothesis that may
        confirm what the last live decode guessed (it decodes the whole utterance)."""
        result = await self._decode(end, token=token)
        if self.on_partial is not None and not self._finishing:
            new = self.agreement.update(split(result.text), whole=True)
            if new:
                await self._tell(new)
        return result

    async def _decode(
        self,
        end: int,
        on_segment: Callable[[Segment], None] | None = None,
        *,
        token: CancelToken | None = None,
    ) -> Result:
        audio = self.audio(end)
        with self.engine.admission.admit(self.model):
            return await self.engine.transcribe(
                audio, self.options, self.model, on_segment, token=token
            )

    # -- live text: confirmed words while the speaker talks ----------------------------------------

    @property
    def _live(self) -> bool:
        """Whether live text is wanted now: never once more people talk than there are workers
        (their finals come first)."""
        if self.on_partial is None or self._finishing:
            return False
        return self.engine.speakers <= self.engine.config.max_concurrency

    def _maybe_partial(self) -> None:
        if not self._live:
            return
        if self._partial is not None and not self._partial.done():
            return  # never queue behind a running live decode: skip this one
        if self._early is not None and not self._early.task.done():
            return
        if not self.engine.admission.has_idle_worker:
            return  # optional work: never delays a final or another client
        end = self._len
        if not self.tracker.voiced:
            return  # a pause may have begun: the early decode will want the worker
        start = self.tracker.speech_start
        if start is None or self.tracker.speech_end <= self._live_mark:
            return  # no new speech since the last live decode
        if end - self._live_mark < LIVE_EVERY_SECONDS * SAMPLE_RATE:
            return
        if end - start < LIVE_FIRST_SECONDS * SAMPLE_RATE:
            return
        self._live_mark = end
        self._partial = asyncio.create_task(self._run_partial(end))
        self._partial.add_done_callback(_retrieve)

    def partial_options(self) -> TranscribeOptions:
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

    async def _run_partial(self, end: int) -> None:
        """Decode the window, confirm what agrees with the decode before, tell the client."""
        start = self._window
        try:
            with self.engine.admission.admit(self.model):
                result = await self.engine.transcribe(
                    self._buf[start:end].copy(),
                    self.partial_options(),
                    self.model,
                    token=CancelToken(speculative=True, live=True),
                )
        except WhisperError as err:  # best effort: the final reports real failures
            _LOGGER.debug("Live decode skipped: %s", err.message)
            return
        if self._finishing:
            return
        new = self.agreement.update(split(result.text))
        if self.agreement.covered is not None:
            self._move_window(result.segments, self.agreement.covered, end - start)
        shown = end - (self.tracker.speech_start or 0) >= PARTIAL_MIN_SECONDS * SAMPLE_RATE
        if new or shown:
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

    # -- the end --------------------------------------------------------------------------------

    async def finish(self, on_segment: Callable[[Segment], None] | None = None) -> Result:
        """The final result: the early decode's when it covers exactly the final audio.

        ``on_segment`` sees segments as a decode started here firms them up; an early result
        arrives whole.
        """
        self._finishing = True
        self.engine.streams.discard(self)
        self._cancel_partial()
        await self._catch_up_vad()
        end = final_end(self.tracker, self._len, self._trail)
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
        await _cancelled([t for t in (self._partial, early.task if early else None) if t])
        return await self._decode(end, on_segment=on_segment)

    async def close(self) -> None:
        """Cancel background work (the client went away or the utterance failed)."""
        self._finishing = True
        self.engine.streams.discard(self)
        tasks = [t for t in (self._partial, self._early.task if self._early else None) if t]
        self._early = None
        await _cancelled(tasks)


async def _cancelled(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel background decodes and wait until they have let go of their workers and slots."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # our caller is cancelled, not just the task we cancelled
        except Exception:  # already taken, and logged when a bug, by _retrieve
            pass


def _retrieve(task: asyncio.Task) -> None:
    """Take a background decode's exception, so asyncio does not report it as never retrieved;
    a fault that is not a WhisperError (a bug) is logged once, with its traceback."""
    if not task.cancelled():
        err = task.exception()
        if err is not None and not isinstance(err, WhisperError):
            _LOGGER.error("Background decode failed", exc_info=err)
