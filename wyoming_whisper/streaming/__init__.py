"""One utterance being received: audio in, voice activity, early decoding, live text, the final.

Every streaming front door (Wyoming, the WebSocket, the Realtime API) feeds a ``Stream`` and asks
it for the final result. What "the final result" means is fixed here, so that an early decode and
a decode after the end of the stream see exactly the same samples:

    the final decode covers the audio from the start up to ``TRAIL_SECONDS`` after the end of the
    last speech the voice activity detector (Silero, as shipped with faster-whisper) heard
    (``ENDPOINT_TRAIL_SECONDS`` when the server ends the utterance itself); with no speech heard
    at all, the whole audio.

Silence after that point therefore cannot change the result, and a decode started during a pause
is the final answer as long as no new speech arrives before the end of the stream.

By concern: ``vad.py`` (Silero window by window, where speech was heard, the final's end point),
``utterance.py`` (the utterance's audio: buffer, VAD catch-up, pre-roll, speech start and end),
``live.py`` (live decodes, their agreement, and ``LiveText``: what a door has sent of them),
``decodes.py`` (early decodes and the final), ``background.py`` (admitted background decodes),
``settings.py`` (``StreamSettings``), ``stream.py`` (``Stream``, the facade composing them).
"""

from .decodes import EARLY_MAX_SECONDS
from .live import (
    LIVE_EVERY_SECONDS,
    LIVE_FIRST_SECONDS,
    MAX_OPEN_TAIL_SECONDS,
    PARTIAL_MIN_SECONDS,
    PROMPT_CHARS,
    TRIM_SECONDS,
    LiveText,
    Partial,
    PartialCallback,
)
from .settings import ENDPOINT_SECONDS, ENDPOINT_TRAIL_SECONDS, TRAIL_SECONDS, StreamSettings
from .stream import SLICE_SAMPLES, Stream
from .utterance import MAX_PACE, PACE_SLACK_SECONDS, PREROLL_SECONDS
from .vad import (
    CONTEXT,
    HYSTERESIS,
    SPEECH_THRESHOLD,
    WINDOW,
    SileroStream,
    SpeechTracker,
    final_end,
)

__all__ = [
    "CONTEXT",
    "EARLY_MAX_SECONDS",
    "ENDPOINT_SECONDS",
    "ENDPOINT_TRAIL_SECONDS",
    "HYSTERESIS",
    "LIVE_EVERY_SECONDS",
    "LIVE_FIRST_SECONDS",
    "MAX_OPEN_TAIL_SECONDS",
    "MAX_PACE",
    "PACE_SLACK_SECONDS",
    "PARTIAL_MIN_SECONDS",
    "PREROLL_SECONDS",
    "PROMPT_CHARS",
    "SLICE_SAMPLES",
    "SPEECH_THRESHOLD",
    "TRAIL_SECONDS",
    "TRIM_SECONDS",
    "WINDOW",
    "LiveText",
    "Partial",
    "PartialCallback",
    "SileroStream",
    "SpeechTracker",
    "Stream",
    "StreamSettings",
    "final_end",
]
