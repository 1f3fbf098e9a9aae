"""Transcripts Home Assistant understands: a near-miss of a command becomes the command.

Home Assistant's default conversation agent matches a transcript exactly against its sentence
templates (PyPI ``home-assistant-intents``, matched by ``hassil``) and the names it knows. Whisper
gets most of a command right and misses by a sound: "Toll of the porch light", "Turned the desk
lamp off", a name one letter off. Given the names of a home (``Home``), ``Commands.match`` checks
a transcript with the same libraries Home Assistant uses and, when the words are not a command but
a close variant is, answers that variant, with the names written as Home Assistant has them.

Close means, in this order (each checked by ``hassil`` before it is answered):

1. the transcript itself (a command already: kept as it is);
2. the transcript with each fuzzy name written exactly ("Plantery lamp" -> "Plantuary lamp"), or
   only its first clause when it says one command twice;
3. a command sentence of Home Assistant's own (sampled from its templates, per intent) whose
   words are within ``FRAME_SCORE`` of the transcript's, slots (names, numbers) aside.

Free speech is never rewritten: nothing happens unless a name of the home is heard (``NAME_SCORE``),
and a sentence that merely mentions a name is too far from every command template. The thresholds
were chosen on bench/assist.py's non-command utterances (docs/commands.md).

Blocking (template compilation, a few ms of matching): call it from a worker thread.

The parts, by concern: ``home`` (the names of a home: data), ``hearing`` (names heard in words,
by spelling and by sound), ``templates`` (Home Assistant's sentences sampled into frames, and a
home's sentence triggers), ``frames`` (the frames nearest a transcript), ``recognizer`` (what
``hassil`` understands, with a home's names), ``matcher`` (``Commands``: the near-miss search,
its alternatives, ``choose``) and ``assist`` (each language loaded in the background).
"""

from __future__ import annotations

from .assist import Assist
from .hearing import (
    FILLERS,
    NAME_SCORE,
    PLACED_MARGIN,
    PLACED_SCORE,
    SHORT_NAME,
    similarity,
    sound,
    words,
)
from .home import CLIENT_NAMES, NAME_CHARS, Entity, Home, Place
from .matcher import (
    ALT_FRAME_SCORE,
    ALT_NAME_SCORE,
    ALT_PLACED,
    ALT_PLACED_SCORE,
    ALT_TRIED,
    ALTERNATIVES,
    COMMAND_SECONDS,
    FRAME_SCORE,
    HEARD_MARGIN,
    MARGIN,
    MAX_WORDS,
    Commands,
    Match,
    choose,
)
from .recognizer import KEPT_PARSES, PARSES
from .templates import NAME_SLOTS, SAMPLES, SLOT_MARK, TRIGGER

__all__ = [
    "ALTERNATIVES",
    "ALT_FRAME_SCORE",
    "ALT_NAME_SCORE",
    "ALT_PLACED",
    "ALT_PLACED_SCORE",
    "ALT_TRIED",
    "CLIENT_NAMES",
    "COMMAND_SECONDS",
    "FILLERS",
    "FRAME_SCORE",
    "HEARD_MARGIN",
    "KEPT_PARSES",
    "MARGIN",
    "MAX_WORDS",
    "NAME_CHARS",
    "NAME_SCORE",
    "NAME_SLOTS",
    "PARSES",
    "PLACED_MARGIN",
    "PLACED_SCORE",
    "SAMPLES",
    "SHORT_NAME",
    "SLOT_MARK",
    "TRIGGER",
    "Assist",
    "Commands",
    "Entity",
    "Home",
    "Match",
    "Place",
    "choose",
    "similarity",
    "sound",
    "words",
]
