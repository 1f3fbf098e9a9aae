"""Where speech is heard: Silero VAD run window by window, and the positions it gives (pure but
for the model).

The model is the Silero VAD shipped with faster-whisper (a dependency of every install, whichever
backend decodes), reached through ``backends.faster_whisper_internals``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# This imports faster_whisper here, on the main thread at start-up: importing it for the first
# time in two threads at once (a model load and a stream's VAD) can fail half-way.
from ..backends.faster_whisper_internals import SileroSession

WINDOW = 512  # Silero's window at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window Silero sees before each window
SPEECH_THRESHOLD = 0.5  # a window this likely to be speech starts (or continues) speech
HYSTERESIS = 0.15  # ... and one above it less this continues speech already under way


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
    """The sample count the final decode covers (see the package docstring)."""
    if not tracker.heard_speech:
        return total
    return min(total, tracker.speech_end + trail)
