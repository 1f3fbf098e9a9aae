"""``Stream``: one utterance being received, the facade both streaming doors feed.

It composes the utterance's audio and VAD (``utterance.py``), its live decodes (``live.py``) and
its early decodes and final (``decodes.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..audio import PcmConverter
from ..backends.base import SAMPLE_RATE, Result, Segment, TranscribeOptions
from ..engine import Engine
from ..request import TranscriptionRequest, decode_options
from .decodes import Decodes
from .live import LiveDecodes, PartialCallback
from .settings import ENDPOINT_TRAIL_SECONDS, TRAIL_SECONDS, StreamSettings
from .utterance import UtteranceAudio
from .vad import SPEECH_THRESHOLD

SLICE_SAMPLES = 1 << 20  # a client's chunk is converted in pieces of about 65 s at 16 kHz


class Stream:
    """Audio of one utterance as it arrives; ``finish`` gives the final Result.

    Early decodes and live decodes run as background tasks through the engine (admission slot
    held while running); they are cancelled when superseded, when the final is requested, or by
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
        self.received = UtteranceAudio(engine, settings.max_seconds, settings.speech_threshold)
        self.live = LiveDecodes(engine, model, options, self.received, on_partial)
        self.decodes = Decodes(engine, model, options, settings, self.received, self.live)
        engine.streams.add(self)

    @classmethod
    def open(
        cls,
        engine: Engine,
        request: TranscriptionRequest,
        *,
        endpoint_silence: float | None = None,
        speech_threshold: float = SPEECH_THRESHOLD,
        on_partial: PartialCallback | None = None,
    ) -> Stream:
        """A stream for a validated request, with the server's streaming settings (every door);
        ``speech_threshold``: a client's own VAD threshold (the Realtime API's server_vad)."""
        config = engine.config
        ends_itself = endpoint_silence is not None
        settings = StreamSettings(
            early_decoding=not config.no_early_decoding,
            early_pause=ENDPOINT_TRAIL_SECONDS if ends_itself else config.early_decoding_pause,
            endpoint_silence=endpoint_silence,
            max_seconds=config.stream_seconds,
            trail=ENDPOINT_TRAIL_SECONDS if ends_itself else TRAIL_SECONDS,
            speech_threshold=speech_threshold,
        )
        options = decode_options(request, engine.options(), vad_filter=config.vad_filter)
        live = None if config.no_live_text else on_partial
        return cls(engine, request.model, options, settings, on_partial=live)

    # -- audio in -------------------------------------------------------------------------------

    @property
    def samples(self) -> int:
        return self.received.samples

    @property
    def seconds(self) -> float:
        return self.received.seconds

    @property
    def heard_speech(self) -> bool:
        return self.received.heard_speech

    @property
    def speech_start(self) -> int | None:
        """Where speech started, in samples of all the audio received (None before speech)."""
        return self.received.speech_start

    @property
    def speech_end(self) -> int:
        """Where the last speech ended, in samples of all the audio received."""
        return self.received.speech_end

    @property
    def endpoint_reached(self) -> bool:
        """Speech, then ``endpoint_silence`` of non-speech (only with VAD endpointing)."""
        limit = self.settings.endpoint_silence
        if limit is None:
            return False
        tracker = self.received.tracker
        silence = tracker.silence_after_speech(tracker.position)
        return silence >= max(limit, self.settings.trail) * SAMPLE_RATE

    @property
    def early_used(self) -> bool:
        """Whether the final was the early decode's."""
        return self.decodes.early_used

    def audio(self, end: int | None = None) -> np.ndarray:
        """A copy of the audio so far (up to ``end`` samples)."""
        return self.received.copy(end)

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
        self.received.check_room(samples)

    async def append(self, samples: np.ndarray) -> None:
        """Add 16 kHz mono float32; runs the VAD off the loop, then schedules background work."""
        if self.received.ended:
            raise RuntimeError("stream already finished")
        if samples.shape[0] == 0:
            return
        self.check_room(samples.shape[0])
        self.received.store(samples)
        if self.settings.endpoint_silence is None and not self.received.paced:
            return  # a burst: nothing to start early; the VAD catches up once, in finish()
        await self.received.catch_up_vad()
        if self.settings.endpoint_silence is not None:
            self.live.shift(self.received.drop_preroll())
        self.decodes.schedule()

    # -- the end --------------------------------------------------------------------------------

    async def finish(self, on_segment: Callable[[Segment], None] | None = None) -> Result:
        """The final result: the early decode's when it covers exactly the final audio.

        ``on_segment`` sees segments as a decode started here firms them up; an early result
        arrives whole.
        """
        self.received.ended = True
        self.engine.streams.discard(self)
        return await self.decodes.final(on_segment)

    async def close(self) -> None:
        """Cancel background work (the client went away or the utterance failed)."""
        self.received.ended = True
        self.engine.streams.discard(self)
        await self.decodes.close()
