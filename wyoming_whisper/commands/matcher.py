"""The matcher: the command Home Assistant understands that a transcript is closest to, and the
near commands the audio itself chooses between (``alternatives``, ``choose``)."""

from __future__ import annotations

import collections.abc
import re
from collections.abc import Iterator
from dataclasses import dataclass

from rapidfuzz import fuzz

from .frames import FrameIndex, render
from .hearing import (
    Span,
    keep_edges,
    name_spans,
    nearest_name,
    nearest_names,
    similarity,
    sound,
    words,
)
from .home import Home
from .recognizer import PreparedHome, Recognizer
from .templates import TRIGGER

FRAME_SCORE = 84.0  # the transcript's words against a command template's, slots aside
MARGIN = 4.0  # another command this near to the nearest one: unsure, nothing is rewritten
MAX_WORDS = 16  # longer transcripts are speech, not a command
# Alternatives (``Commands.alternatives``): commands the audio itself then chooses between.
ALTERNATIVES = 3  # at most this many: each costs a forced pass of Whisper's decoder
ALT_NAME_SCORE = 60.0  # a span heard as a name, for an alternative
ALT_FRAME_SCORE = 60.0  # a template's words against the transcript's, for an alternative
ALT_PLACED = 3  # names tried per place a parse leaves free
ALT_TRIED = 12  # of them checked by hassil, nearest the words as heard first
ALT_PLACED_SCORE = 50.0  # and each at least this near ("car with a man": Cubbyhaven, 50)
# Summed log-probability (nats) an alternative may fall short of the words as heard and still be
# what was said: the bench's misheard commands fall 0-15 short, its speech's nearest commands 25+.
HEARD_MARGIN = 15.0
COMMAND_SECONDS = 30.0  # longer audio is not one command: its alternatives are never scored


@dataclass(frozen=True)
class Match:
    """What ``Commands.match`` answers: the text to send and how it was reached."""

    text: str
    outcome: str  # "command" (already one), "rewritten", "heard" (not a command: as heard)
    intent: str | None = None


class Commands(Recognizer):
    """Home Assistant's command sentences for one language, and the matcher over them."""

    def __init__(self, language: str) -> None:
        super().__init__(language)
        # Sampled before the first recognition below: the ``settle`` it ends with keeps them out
        # of the garbage collector's sight with the sentences.
        self._frames = FrameIndex(self.intents)
        # hassil compiles its patterns on first use: pay that here, not on a request.
        self.recognize("turn on the light", Home())

    def frames(self) -> int:
        """How many command sentences were sampled (logged on load)."""
        return len(self._frames)

    def match(self, text: str, home: Home) -> Match:
        """The command Home Assistant understands that ``text`` is closest to, or ``text``."""
        heard = Match(text, "heard")
        said = words(text)
        if not home or not said or len(said) > MAX_WORDS:
            return heard  # (a long transcript is speech: its cost is never paid here)
        intent = self.understands(text, home)
        if intent is not None:
            return Match(text, "command", intent)
        prepared = self._prepare(home)
        if self._trigger(text, prepared):
            return Match(text, "command", TRIGGER)
        if prepared.said:  # a near-miss of one of the home's own sentences
            heard_words = " ".join(said)
            scores = [similarity(heard_words, own) for own in prepared.said]
            best = max(range(len(scores)), key=scores.__getitem__)
            if scores[best] >= FRAME_SCORE and self._trigger(prepared.said[best], prepared):
                return Match(_sentence(prepared.said[best]), "rewritten", TRIGGER)
        spans = name_spans(said, prepared.names)
        if not spans:
            # No name is heard: the words may still be a command's, around a name misheard
            # past recognition ("Pause the music in the sound"); else speech, kept.
            return self._placed(text, home, prepared) or heard
        for candidate in _exact_names(text, said, spans):
            intent = self.understands(candidate, home)
            if intent is not None:
                return Match(_sentence(candidate), "rewritten", intent)
        return self._nearest(said, spans, home) or self._placed(text, home, prepared) or heard

    def alternatives(self, text: str, home: Home, match: Match | None = None) -> list[Match]:
        """Commands ``text`` may have been, for the audio to choose between (``choose``): the
        matcher's own answer, near templates filled with the names heard (without the margins
        that keep a text-only rewrite sure), Home Assistant's words around the nearest names;
        the ``ALTERNATIVES`` nearest the words as heard that Home Assistant understands. Empty
        when ``text`` is a command already, or far from every command with a name."""
        match = match or self.match(text, home)
        if match.outcome == "command":
            return []
        said = words(text)
        if not home or not said or len(said) > MAX_WORDS:
            return []
        prepared = self._prepare(home)
        pool: dict[str, str] = {}  # text -> the intent it is meant as
        spans = name_spans(said, prepared.names, ALT_NAME_SCORE)
        for subset in _subsets(spans):
            for written, intent in self._near(said, subset):
                pool.setdefault(written, intent)
        for written, intent in self._places(text, prepared):
            pool.setdefault(written, intent)
        skipped = self._skipped(said)
        heard = " ".join(said)
        heard_sound = sound(heard)

        def nearness(written: str) -> float:
            spelled = " ".join(words(written))
            return fuzz.ratio(heard, spelled) + fuzz.ratio(heard_sound, sound(spelled))

        found: dict[str, Match] = {}
        if match.outcome == "rewritten":
            found[match.text.lower()] = match
        for written in sorted(pool, key=nearness, reverse=True)[:ALT_TRIED]:
            if len(found) >= ALTERNATIVES:
                break
            intent = pool[written]
            if not self._understood(written, intent, prepared):
                continue
            candidate = Match(_sentence(f"{skipped} {written}"), "rewritten", intent)
            found.setdefault(candidate.text.lower(), candidate)
        return list(found.values())

    def _near(self, said: list[str], spans: list[Span]) -> Iterator[tuple[str, str]]:
        """Template sentences near the transcript's words, slots filled from it, best first:
        (text, intent), unchecked."""
        filled, nearest = self._frames.nearest(said, spans)
        for frame, score in nearest:
            if score < ALT_FRAME_SCORE:
                return
            written = render(frame, filled)
            if written is not None:
                yield written, frame.intent

    def _places(self, text: str, prepared: PreparedHome) -> Iterator[tuple[str, str]]:
        """Home Assistant's words as heard, free text where a name goes filled with the names
        of that kind nearest it (any number of words: "car with a man" may be Cubbyhaven)."""
        for intent, placed in self._free_places(text, prepared):
            if len(placed) != 1 or placed[0][1] not in text:
                continue
            slot, heard = placed[0]
            for value in nearest_names(heard, slot, prepared.names, ALT_PLACED, ALT_PLACED_SCORE):
                yield text.replace(heard, keep_edges(heard, value), 1), intent

    def _placed(self, text: str, home: Home, prepared: PreparedHome) -> Match | None:
        """Home Assistant's own words exactly, with free text where the names go: each place's
        words the one name of its kind they are nearest to (``PLACED_SCORE``, none other near),
        the sentence checked again with the real names."""
        best: tuple[float, str] | None = None  # (the worst place's score, the text)
        for _, placed in self._free_places(text, prepared):
            written, worst = text, 100.0
            for slot, heard in placed:
                named = nearest_name(heard, slot, prepared.names)
                if named is None or heard not in written:
                    break
                value, score = named
                written = written.replace(heard, keep_edges(heard, value), 1)
                worst = min(worst, score)
            else:
                if best is None or worst > best[0]:
                    best = (worst, written)
        if best is None:
            return None
        understood = self.recognize(best[1], home)  # with the real names, as HA will
        if understood is None:
            return None
        return Match(_sentence(best[1]), "rewritten", understood)

    def _nearest(self, said: list[str], spans: list[Span], home: Home) -> Match | None:
        """The template sentence nearest the transcript, its slots filled from it."""
        filled, nearest = self._frames.nearest(said, spans)
        chosen: Match | None = None
        chosen_score = 0.0
        for frame, score in nearest:
            if score < FRAME_SCORE:
                break
            if chosen is not None and score < chosen_score - MARGIN:
                break
            if chosen is not None and frame.intent == chosen.intent:
                continue
            text = render(frame, filled)
            if text is None or self.recognize(text, home) != frame.intent:
                continue
            if chosen is not None:
                return None  # as near to another command ("Tarn the fan": on or off?): unsure
            chosen = Match(_sentence(text), "rewritten", frame.intent)
            chosen_score = score
        return chosen


def choose(
    heard: Match, alternatives: list[Match], scores: collections.abc.Sequence[tuple[float, int]]
) -> Match:
    """The alternative the audio fits best per token, unless the words as heard fit it better
    by more than ``HEARD_MARGIN`` in all.

    ``scores``: (summed log-probability, tokens) of the heard words, then of each alternative.
    Among the alternatives a sum would favour the shortest ("Set the Kitchen brightness" over
    "Set the Quorradine brightness"); against the words as heard the sum's margin is what the
    bench's speech was measured by.
    """
    if not alternatives or len(scores) != len(alternatives) + 1:
        return heard
    best = max(range(len(alternatives)), key=lambda i: scores[i + 1][0] / max(scores[i + 1][1], 1))
    if scores[best + 1][0] < scores[0][0] - HEARD_MARGIN:
        return heard
    return alternatives[best]


def _subsets(spans: list[Span]) -> Iterator[list[Span]]:
    """The names heard, all of them, then each alone (one of two may be a mishearing)."""
    yield spans
    if len(spans) > 1:
        for span in sorted(spans, key=lambda s: -s.score):
            yield [span]


def _sentence(text: str) -> str:
    """Written as a transcript is: a capital, words as given, a full stop."""
    text = " ".join(text.split()).rstrip(".!?,;: ")
    return text[:1].upper() + text[1:] + "." if text else text


def _exact_names(text: str, said: list[str], spans: list[Span]) -> Iterator[str]:
    """The transcript with its names written exactly; then its first clause alone."""
    fixed: list[str] = []
    i = 0
    for span in spans:
        if span.slot == "number":
            continue
        fixed += said[i : span.start]
        fixed.append(span.value)
        i = span.end
    fixed += said[i:]
    yield " ".join(fixed)
    clauses = [c for c in re.split(r"[.,;!?]+", text) if c.strip()]
    if len(clauses) > 1:
        first = words(clauses[0])
        firsts = [s for s in spans if s.end <= len(first)]
        if firsts:
            yield from _exact_names(clauses[0], first, firsts)
