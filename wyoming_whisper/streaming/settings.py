"""How a stream decodes early, ends on its own and how long it may grow (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from .vad import SPEECH_THRESHOLD

TRAIL_SECONDS = 0.3  # audio kept after the last speech: the final decode's end point
# ... and for an utterance the server ends itself after a set silence (VAD endpointing, the
# Realtime API's server VAD): its early decode starts after this much silence and must be done
# when the silence is complete, so the margin is shorter (same WER: docs/streaming.md).
ENDPOINT_TRAIL_SECONDS = 0.1

# Transcribe.vad_sensitivity -> seconds of silence that end an utterance (--vad-endpointing).
ENDPOINT_SECONDS = {"aggressive": 0.4, "default": 0.7, "relaxed": 1.2}


@dataclass(frozen=True)
class StreamSettings:
    """How a stream decodes early, how it ends on its own, and how long it may grow."""

    early_decoding: bool = True
    early_pause: float = 0.3  # non-speech after speech that starts an early decode
    endpoint_silence: float | None = None  # end the utterance after this much silence
    max_seconds: float = 3600.0
    trail: float = TRAIL_SECONDS
    speech_threshold: float = SPEECH_THRESHOLD  # a client's own (the Realtime API's server_vad)
