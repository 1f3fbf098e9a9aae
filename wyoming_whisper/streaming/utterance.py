"""The audio of one utterance as it arrives, and where the voice activity detector heard speech.

The VAD runs off the loop over the audio it has not seen yet, in one call per chunk (or once, at
the end, for audio sent in a burst). With VAD endpointing a client may stream silence forever, so
only a short pre-roll of it is kept before speech; what was dropped is counted, and positions
given to a door (``speech_start``, ``speech_end``) count it, so that they place speech in
everything the client sent.
"""

from __future__ import annotations

import time

import numpy as np

from ..backends.base import SAMPLE_RATE
from ..engine import Engine
from ..errors import TooLarge
from .vad import SileroStream, SpeechTracker

PREROLL_SECONDS = 1.0  # with VAD endpointing: silence kept before speech starts
# Early decodes only pay off for audio that arrives at about the pace it plays. A recording sent
# in one burst ends before an early decode could finish, and a decode cannot be interrupted once
# started, so the final would wait behind it: none is started while the audio received is more
# than MAX_PACE times the wall-clock time since the first chunk, plus some client buffering.
MAX_PACE = 4.0
PACE_SLACK_SECONDS = 0.5


class UtteranceAudio:
    """16 kHz mono float32 of one utterance, its VAD, and whether more may come (``ended``)."""

    def __init__(self, engine: Engine, max_seconds: float, threshold: float) -> None:
        self._engine = engine
        self._max_seconds = max_seconds
        self._buf = np.zeros(SAMPLE_RATE * 4, dtype=np.float32)
        self._len = 0
        self._vad: SileroStream | None = None
        self.tracker = SpeechTracker(threshold=threshold)
        self._first_chunk_at: float | None = None
        self._vad_seen = 0  # samples the VAD has processed
        self.dropped = 0  # samples of silence dropped from the front (VAD endpointing)
        self.ended = False  # the final was asked for, or the stream closed: no more audio

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
    def speech_start(self) -> int | None:
        """Where speech started, in samples of everything received (dropped pre-roll included);
        None before any speech."""
        start = self.tracker.speech_start
        return None if start is None else self.dropped + start

    @property
    def speech_end(self) -> int:
        """Where the last speech ended, in samples of everything received."""
        return self.dropped + self.tracker.speech_end

    def copy(self, end: int | None = None) -> np.ndarray:
        """A copy of the audio so far (up to ``end`` samples)."""
        return self._buf[: self._len if end is None else min(end, self._len)].copy()

    def window(self, start: int, end: int) -> np.ndarray:
        """A copy of ``audio[start:end]``."""
        return self._buf[start:end].copy()

    def check_room(self, samples: int) -> None:
        """TooLarge if ``samples`` more would make the stream longer than its limit: one rule for
        audio about to be converted and audio converted."""
        if self._len + samples > self._max_seconds * SAMPLE_RATE:
            raise TooLarge(
                f"stream longer than {self._max_seconds:.0f} s; audio dropped",
                param="audio",
            )

    def store(self, samples: np.ndarray) -> None:
        """Keep ``samples`` (the stream checked their room); the first starts the pace's clock."""
        if self._first_chunk_at is None:
            self._first_chunk_at = time.monotonic()
        need = self._len + samples.shape[0]
        if need > self._buf.shape[0]:
            grown = np.zeros(max(need, self._buf.shape[0] * 2), dtype=np.float32)
            grown[: self._len] = self._buf[: self._len]
            self._buf = grown
        self._buf[self._len : need] = samples
        self._len = need

    @property
    def paced(self) -> bool:
        """Whether the audio arrives at a streaming pace rather than in one burst."""
        if self._first_chunk_at is None:
            return False
        elapsed = time.monotonic() - self._first_chunk_at
        return self.seconds <= MAX_PACE * elapsed + PACE_SLACK_SECONDS

    async def catch_up_vad(self) -> None:
        """Run the VAD (off the loop) over the audio it has not seen yet, in one call."""
        if self._vad_seen >= self._len:
            return
        if self._vad is None:
            self._vad = await self._engine.run_audio(SileroStream)
        fresh = self._buf[self._vad_seen : self._len].copy()
        self._vad_seen = self._len
        probs = await self._engine.run_audio(self._vad.process, fresh)
        self.tracker.update(probs.tolist())

    def drop_preroll(self) -> int:
        """Endpointing clients may stream silence forever: keep only a short pre-roll.

        The samples dropped from the front (0 when none).
        """
        keep = int(PREROLL_SECONDS * SAMPLE_RATE)
        if self.tracker.heard_speech or self.tracker.position <= 2 * keep:
            return 0
        drop = self.tracker.position - keep
        self._buf[: self._len - drop] = self._buf[drop : self._len]
        self._len -= drop
        self._vad_seen -= drop
        self.dropped += drop
        self.tracker.shift(drop)
        return drop
