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
"""

from __future__ import annotations

import collections.abc
import gc
import heapq
import itertools
import logging
import random
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hassil import Intents, recognize_all, recognize_best
from hassil.expression import (
    Expression,
    ListReference,
    RuleReference,
    Sentence,
    Sequence,
    SequenceType,
    TextChunk,
)
from hassil.intents import RangeSlotList, SlotList, TextSlotList, WildcardSlotList
from home_assistant_intents import get_intents
from rapidfuzz import fuzz, process

from .linear_patterns import linear

_LOGGER = logging.getLogger(__name__)

NAME_SCORE = 80.0  # a span of the transcript heard as a name (rapidfuzz ratio, 0-100)
FRAME_SCORE = 84.0  # the transcript's words against a command template's, slots aside
MARGIN = 4.0  # another command this near to the nearest one: unsure, nothing is rewritten
PLACED_SCORE = 65.0  # words where a name goes, against the nearest name of that kind
PLACED_MARGIN = 10.0  # another name this near: unsure
PARSES = 12  # of Home Assistant's sentences, with free text for the names
KEPT_PARSES = 8  # texts whose parses are kept (the text-only step's, for the alternatives)
# Words of a command's frame, never the edge of a name unless the name has them there.
FILLERS = frozenset(
    ("the", "a", "an", "my", "our", "your", "all", "in", "on", "off", "of", "to", "at", "and")
)
SHORT_NAME = 5  # names of this many letters or fewer must be heard exactly
SAMPLES = 300  # sentences sampled per template: enough variety, bounded memory
MAX_WORDS = 16  # longer transcripts are speech, not a command
CLIENT_NAMES = 500  # a client's own names (transcript_names) matched against, at most
NAME_CHARS = 100  # a longer "name" is not one

# Placeholders in a skeleton: one character per slot, never produced by normalisation.
SLOT_MARK = {"name": "\u2460", "area": "\u2461", "floor": "\u2462", "number": "\u2463"}
NAME_SLOTS = ("name", "area", "floor")
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
TRIGGER = "SentenceTrigger"  # the intent of a home's own sentence (an automation's trigger)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*%?|%")


@dataclass(frozen=True)
class Entity:
    """An entity Assist can act on: its name, aliases and the context Home Assistant matches."""

    name: str
    domain: str = ""
    aliases: tuple[str, ...] = ()
    device_class: str | None = None
    area: str | None = None  # its area's name (its own, else its device's)


@dataclass(frozen=True)
class Place:
    """An area or a floor, with its aliases (and an area's floor)."""

    name: str
    aliases: tuple[str, ...] = ()
    floor: str | None = None


@dataclass(frozen=True)
class Home:
    """The names Home Assistant matches commands against."""

    entities: tuple[Entity, ...] = ()
    areas: tuple[Place, ...] = ()
    floors: tuple[Place, ...] = ()
    sentences: tuple[str, ...] = ()  # sentence triggers' templates (custom commands)

    @staticmethod
    def from_names(names: Iterable[str]) -> Home:
        """Names with no kind (a client's ``transcript_names``): entities with no domain; the
        first ``CLIENT_NAMES`` (most important first), each at most ``NAME_CHARS`` long."""
        kept = (n.strip() for n in names if n.strip() and len(n) <= NAME_CHARS)
        return Home(
            entities=tuple(Entity(n) for n in itertools.islice(dict.fromkeys(kept), CLIENT_NAMES))
        )

    def __bool__(self) -> bool:
        return bool(self.entities or self.areas or self.floors or self.sentences)

    def spoken(self) -> list[tuple[str, str, str]]:
        """(what is said, slot, the value Home Assistant writes) for every name and alias."""
        said = [(e.name, "name", e.name) for e in self.entities]
        said += [(a, "name", a) for e in self.entities for a in e.aliases]
        for slot, places in (("area", self.areas), ("floor", self.floors)):
            said += [(p.name, slot, p.name) for p in places]
            said += [(a, slot, a) for p in places for a in p.aliases]
        return [s for s in said if s[0].strip()]

    def slot_lists(self) -> dict[str, SlotList]:
        """Home Assistant's own slot lists for these names (its default agent's shape)."""

        def context(e: Entity) -> dict[str, Any]:
            found: dict[str, Any] = {"domain": e.domain} if e.domain else {}
            if e.device_class:
                found["device_class"] = e.device_class
            return found

        names = [(n, n, context(e)) for e in self.entities for n in (e.name, *e.aliases)]
        areas = [(n, n) for p in self.areas for n in (p.name, *p.aliases)]
        floors = [(n, p.name) for p in self.floors for n in (p.name, *p.aliases)]
        return {
            "name": TextSlotList.from_tuples(names, allow_template=False),
            "area": TextSlotList.from_tuples(areas, allow_template=False),
            "floor": TextSlotList.from_tuples(floors, allow_template=False),
        }


@dataclass(frozen=True)
class Match:
    """What ``Commands.match`` answers: the text to send and how it was reached."""

    text: str
    outcome: str  # "command" (already one), "rewritten", "heard" (not a command: as heard)
    intent: str | None = None


@dataclass(frozen=True)
class _Frame:
    """One command sentence of a template: words with one mark per slot."""

    skeleton: str  # normalised words, slots as SLOT_MARK characters
    intent: str
    slots: tuple[str, ...]  # the list name behind each mark, in order


@dataclass
class _Span:
    start: int
    end: int
    slot: str  # name, area, floor or number
    value: str
    score: float


_Parse = tuple[str, list[tuple[str, str]]]  # an intent, and the words where each name goes


@dataclass
class _Prepared:
    """A home's slot lists and spoken names, built once per ``Home``."""

    home: Home
    lists: dict[str, SlotList]
    spoken: list[tuple[list[str], str, str]]  # (words, slot, value)
    max_words: int = field(default=1)
    spelled: list[str] = field(default_factory=list)  # each spoken name's words, joined
    sounds: list[str] = field(default_factory=list)  # and their sound
    triggers: Intents | None = None  # the sentence triggers' sentences, as Home Assistant has them
    trigger_lists: dict[str, SlotList] = field(default_factory=dict)  # their {lists}: free text
    said: list[str] = field(default_factory=list)  # sampled trigger sentences, as words
    parses: dict[str, list[_Parse]] = field(default_factory=dict)  # the last texts' free places

    def similarity(self, heard: str, heard_sound: str, index: int) -> float:
        """``similarity`` against the ``index``-th name, its spelling and sound computed once."""
        return max(
            fuzz.ratio(heard, self.spelled[index]), fuzz.ratio(heard_sound, self.sounds[index])
        )


_SOUNDS = (
    *(("ph", "f"), ("th", "t"), ("ck", "k"), ("qu", "kw"), ("x", "ks"), ("c", "k")),
    *(("z", "s"), ("y", "i"), ("wh", "w"), ("gh", "g")),
)


def sound(text: str) -> str:
    """A rough sound of English words ("Oberlyn cattle" and "Oberlyn kettle" alike): spellings
    of one sound folded, vowels one letter, doubled letters once. Compared beside the spelling."""
    for spelled, said in _SOUNDS:
        text = text.replace(spelled, said)
    text = re.sub(r"(?<=[a-z])h", "", text)
    text = re.sub(r"[aeiou]+", "a", text)
    return re.sub(r"(.)\1+", r"\1", text)


def similarity(heard: str, meant: str) -> float:
    """0-100: the better of spelling and sound (rapidfuzz's normalised indel similarity)."""
    return max(fuzz.ratio(heard, meant), fuzz.ratio(sound(heard), sound(meant)))


def words(text: str) -> list[str]:
    """A transcript's words as templates are written: lower case, no punctuation, digits kept."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


class Commands:
    """Home Assistant's command sentences for one language, and the matcher over them."""

    def __init__(self, language: str) -> None:
        data = get_intents(language)
        if data is None:
            raise LookupError(f"Home Assistant has no sentences for {language!r}")
        self.language = language
        self.intents = Intents.from_dict(data)
        linear(self.intents)  # (its patterns in RE2: a question that is no command cost 100s of ms)
        # Per set of slots: the frames, their words and their sounds (compared both ways).
        self._frames: dict[tuple[str, ...], tuple[list[_Frame], list[str], list[str]]] = {}
        for frame in _frames(self.intents):
            slots = tuple(sorted(s if s in NAME_SLOTS else "number" for s in frame.slots))
            frames, spelled, sounds = self._frames.setdefault(slots, ([], [], []))
            frames.append(frame)
            spelled.append(frame.skeleton)
            sounds.append(sound(frame.skeleton))
        self._prepared: _Prepared | None = None
        self._only: dict[str, Intents] = {}  # one intent's sentences, for checking alternatives
        self._lock = threading.Lock()
        # hassil compiles its patterns on first use: pay that here, not on a request.
        self.recognize("turn on the light", Home())

    def frames(self) -> int:
        return sum(len(frames) for frames, _, _ in self._frames.values())

    def _prepare(self, home: Home) -> _Prepared:
        with self._lock:
            cached = self._prepared
            if cached is None or (cached.home is not home and cached.home != home):
                spoken = [(words(said), slot, value) for said, slot, value in home.spoken()]
                spoken = [s for s in spoken if s[0]]
                longest = max((len(w) for w, _, _ in spoken), default=1)
                prepared = _Prepared(home, home.slot_lists(), spoken, longest)
                prepared.spelled = [" ".join(w) for w, _, _ in spoken]
                prepared.sounds = [sound(n) for n in prepared.spelled]
                prepared.triggers, prepared.trigger_lists, prepared.said = _triggers(
                    home.sentences, self.language
                )
                self._prepared = cached = prepared
                _settle()
            return cached

    def _trigger(self, text: str, prepared: _Prepared) -> bool:
        """Whether ``text`` is one of the home's own sentences (sentence triggers)."""
        if prepared.triggers is None:
            return False
        found = recognize_best(
            text, prepared.triggers, slot_lists=prepared.trigger_lists, language=self.language
        )
        return found is not None

    def recognize(self, text: str, home: Home) -> str | None:
        """The intent Home Assistant finds in ``text`` with these names, if any."""
        found = recognize_best(
            text,
            self.intents,
            slot_lists=self._prepare(home).lists,
            language=self.language,
            best_slot_name="name",
        )
        if found is None or any(isinstance(e.value, dict) for e in found.entities.values()):
            return None
        return found.intent.name

    def understands(self, text: str, home: Home) -> str | None:
        """The intent of the first reading Home Assistant finds in ``text``, if any: whether it
        is a command, without ranking every reading as ``recognize`` does (on the bench's
        commands 5 ms at the median where ranking takes 9)."""
        for found in recognize_all(
            text, self.intents, slot_lists=self._prepare(home).lists, language=self.language
        ):
            if not any(isinstance(e.value, dict) for e in found.entities.values()):
                return found.intent.name
        return None

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
        spans = _name_spans(said, prepared)
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
        spans = _name_spans(said, prepared, ALT_NAME_SCORE)
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

    def _understood(self, text: str, intent: str, prepared: _Prepared) -> bool:
        """Whether Home Assistant finds ``intent`` in ``text``: matched against that intent's
        sentences alone (a few ms, where all of them take 10-40)."""
        only = self._only.get(intent)
        if only is None:
            whole = self.intents
            only = self._only[intent] = Intents(
                language=whole.language,
                intents={intent: whole.intents[intent]},
                slot_lists=whole.slot_lists,
                expansion_rules=whole.expansion_rules,
                skip_words=whole.skip_words,
                settings=whole.settings,
            )
        found = recognize_best(
            text, only, slot_lists=prepared.lists, language=self.language, best_slot_name="name"
        )
        return found is not None and not any(
            isinstance(e.value, dict) for e in found.entities.values()
        )

    def _skipped(self, said: list[str]) -> str:
        """The words Home Assistant skips that the transcript begins with ("please"): kept in
        front of an alternative, so the audio compares like with like."""
        for skip in sorted(self.intents.skip_words, key=len, reverse=True):
            if said[: len(skip.split())] == skip.split():
                return skip
        return ""

    def _near(self, said: list[str], spans: list[_Span]) -> Iterator[tuple[str, str]]:
        """Template sentences near the transcript's words, slots filled from it, best first:
        (text, intent), unchecked."""
        filled, nearest = self._near_frames(said, spans)
        for frame, score in nearest:
            if score < ALT_FRAME_SCORE:
                return
            written = _render(frame, filled)
            if written is not None:
                yield written, frame.intent

    def _near_frames(
        self, said: list[str], spans: list[_Span]
    ) -> tuple[list[_Span], list[tuple[_Frame, float]]]:
        """The transcript's slots (names and numbers), and the template sentences with the same
        slots nearest its other words, nearest first with their scores."""
        spans = spans + _number_spans(said, spans)
        skeleton, filled = _skeleton(said, spans)
        found = self._frames.get(tuple(sorted(s.slot for s in filled)))
        if found is None:
            return filled, []
        frames, spelled, sounds = found
        heard_sound = sound(skeleton)
        picked: set[int] = set()
        for query, strings in ((skeleton, spelled), (heard_sound, sounds)):
            nearest = process.extract(query, strings, scorer=fuzz.ratio, limit=8)
            picked.update(index for _, _, index in nearest)
        # Spelling and sound together: sound alone hears "off" as "on" ("af"/"an").
        scores = {
            i: (fuzz.ratio(skeleton, spelled[i]) + fuzz.ratio(heard_sound, sounds[i])) / 2
            for i in picked
        }
        ranked = sorted(scores, key=lambda i: -scores[i])
        return filled, [(frames[i], scores[i]) for i in ranked]

    def _places(self, text: str, prepared: _Prepared) -> Iterator[tuple[str, str]]:
        """Home Assistant's words as heard, free text where a name goes filled with the names
        of that kind nearest it (any number of words: "car with a man" may be Cubbyhaven)."""
        for intent, placed in self._free_places(text, prepared):
            if len(placed) != 1 or placed[0][1] not in text:
                continue
            slot, heard = placed[0]
            for value in _nearest_names(heard, slot, prepared, ALT_PLACED):
                yield text.replace(heard, _keep_edges(heard, value), 1), intent

    def _free_places(self, text: str, prepared: _Prepared) -> list[_Parse]:
        """Home Assistant's parses of ``text`` with free text where names go: (intent, [(slot,
        the words there)]). Kept for the last few texts: the text-only step and the
        alternatives both read them (a parse costs tens of ms)."""
        with self._lock:
            known = prepared.parses.get(text)
        if known is not None:
            return known
        # Free text for the places with the entities' names real, then for the entity with the
        # places real: each way far fewer parses than free text for all three.
        wild = {n: WildcardSlotList(n) for n in NAME_SLOTS}
        ways = (
            {**prepared.lists, "area": wild["area"], "floor": wild["floor"]},
            {**prepared.lists, "name": wild["name"]},
        )
        found: list[_Parse] = []
        for way in ways:
            parses = recognize_all(text, self.intents, slot_lists=way, language=self.language)
            for parse in itertools.islice(parses, PARSES):
                placed = [
                    (k, e.text)
                    for k, e in parse.entities.items()
                    if k in NAME_SLOTS and e.is_wildcard
                ]
                if placed:
                    found.append((parse.intent.name, placed))
        with self._lock:
            prepared.parses[text] = found
            while len(prepared.parses) > KEPT_PARSES:
                prepared.parses.pop(next(iter(prepared.parses)))
        return found

    def _placed(self, text: str, home: Home, prepared: _Prepared) -> Match | None:
        """Home Assistant's own words exactly, with free text where the names go: each place's
        words the one name of its kind they are nearest to (``PLACED_SCORE``, none other near),
        the sentence checked again with the real names."""
        best: tuple[float, str] | None = None  # (the worst place's score, the text)
        for _, placed in self._free_places(text, prepared):
            written, worst = text, 100.0
            for slot, heard in placed:
                named = _nearest_name(heard, slot, prepared)
                if named is None or heard not in written:
                    break
                value, score = named
                written = written.replace(heard, _keep_edges(heard, value), 1)
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

    def _nearest(self, said: list[str], spans: list[_Span], home: Home) -> Match | None:
        """The template sentence nearest the transcript, its slots filled from it."""
        filled, nearest = self._near_frames(said, spans)
        chosen: Match | None = None
        chosen_score = 0.0
        for frame, score in nearest:
            if score < FRAME_SCORE:
                break
            if chosen is not None and score < chosen_score - MARGIN:
                break
            if chosen is not None and frame.intent == chosen.intent:
                continue
            text = _render(frame, filled)
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


def _nearest_name(heard: str, slot: str, prepared: _Prepared) -> tuple[str, float] | None:
    """The one name of this kind (name, area, floor) the words are near; None when none is, or
    when another is nearly as near."""
    core = _core(words(heard))
    if not core:
        return None
    spelled = " ".join(core)
    said = sound(spelled)
    scored = sorted(
        (
            (prepared.similarity(spelled, said, index), value)
            for index, (w, kind, value) in enumerate(prepared.spoken)
            # as many words as the name, one more or fewer: free text takes what it can ("It's
            # a plantuary lamp" is no name: "Is the plantuary lamp on" was said)
            if kind == slot and abs(len(w) - len(core)) <= 1
        ),
        reverse=True,
    )
    if not scored or scored[0][0] < PLACED_SCORE:
        return None
    if any(v != scored[0][1] and s > scored[0][0] - PLACED_MARGIN for s, v in scored[1:]):
        return None
    return scored[0][1], scored[0][0]


def _nearest_names(heard: str, slot: str, prepared: _Prepared, limit: int) -> list[str]:
    """The ``limit`` names of this kind (name, area, floor) nearest the words, any length."""
    core = _core(words(heard))
    if not core:
        return []
    spelled = " ".join(core)
    said = sound(spelled)
    scored: dict[str, float] = {}
    for index, (_, kind, value) in enumerate(prepared.spoken):
        if kind == slot:
            score = prepared.similarity(spelled, said, index)
            if score >= ALT_PLACED_SCORE:
                scored[value] = max(score, scored.get(value, 0.0))
    return sorted(scored, key=lambda v: -scored[v])[:limit]


def _subsets(spans: list[_Span]) -> Iterator[list[_Span]]:
    """The names heard, all of them, then each alone (one of two may be a mishearing)."""
    yield spans
    if len(spans) > 1:
        for span in sorted(spans, key=lambda s: -s.score):
            yield [span]


def _core(said: list[str]) -> list[str]:
    """A place's words without the frame's words at its edges ("the sound" -> "sound")."""
    while said and said[0] in FILLERS:
        said = said[1:]
    while said and said[-1] in FILLERS:
        said = said[:-1]
    return said


def _keep_edges(heard: str, value: str) -> str:
    """``heard`` with its core words replaced by the name, the frame's words around it kept."""
    parts = heard.split()

    def filler(part: str) -> bool:
        said = words(part)
        return bool(said) and said[0] in FILLERS

    lead = 0
    while lead < len(parts) and filler(parts[lead]):
        lead += 1
    trail = len(parts)
    while trail > lead and filler(parts[trail - 1]):
        trail -= 1
    return " ".join([*parts[:lead], value, *parts[trail:]])


def _sentence(text: str) -> str:
    """Written as a transcript is: a capital, words as given, a full stop."""
    text = " ".join(text.split()).rstrip(".!?,;: ")
    return text[:1].upper() + text[1:] + "." if text else text


def _name_spans(said: list[str], prepared: _Prepared, least: float = NAME_SCORE) -> list[_Span]:
    """The names of the home heard in the transcript, best first, none overlapping."""
    found: list[_Span] = []
    for start in range(len(said)):
        for length in range(1, min(prepared.max_words + 1, len(said) - start) + 1):
            heard = " ".join(said[start : start + length])
            edges = (said[start], said[start + length - 1])
            # Near by spelling or by sound (rapidfuzz over every name at once: a home's
            # thousands of names cost milliseconds), then each candidate's rules.
            heard_sound = sound(heard)
            near: set[int] = set()
            for query, names in ((heard, prepared.spelled), (heard_sound, prepared.sounds)):
                picked = process.extract(
                    query, names, scorer=fuzz.ratio, limit=16, score_cutoff=least
                )
                near.update(index for _, _, index in picked)
            for index in sorted(near):
                name_words, slot, value = prepared.spoken[index]
                if abs(len(name_words) - length) > 1:
                    continue
                if (edges[0] in FILLERS and edges[0] != name_words[0]) or (
                    edges[1] in FILLERS and edges[1] != name_words[-1]
                ):
                    continue  # "the light" is not "Kitchen light": a name has its own words
                name = prepared.spelled[index]
                if len(name.replace(" ", "")) <= SHORT_NAME:
                    score = 100.0 if heard == name else 0.0
                else:
                    score = prepared.similarity(heard, heard_sound, index)
                if score >= least:
                    found.append(_Span(start, start + length, slot, value, score))
    found.sort(key=lambda s: (-s.score, -(s.end - s.start), s.start))
    chosen: list[_Span] = []
    for span in found:
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


def _number_spans(said: list[str], taken: list[_Span]) -> list[_Span]:
    spans = []
    for i, word in enumerate(said):
        digits = word.rstrip("%")
        if digits.isdigit() and all(not (s.start <= i < s.end) for s in taken):
            spans.append(_Span(i, i + 1, "number", digits, 100.0))
    return spans


def _skeleton(said: list[str], spans: list[_Span]) -> tuple[str, list[_Span]]:
    """The transcript's words with each slot's span replaced by its mark."""
    out: list[str] = []
    filled: list[_Span] = []
    i = 0
    for span in sorted(spans, key=lambda s: s.start):
        out += said[i : span.start]
        mark = SLOT_MARK[span.slot]
        out += [mark, "%"] if said[span.end - 1].endswith("%") else [mark]
        filled.append(span)
        i = span.end
    out += said[i:]
    return " ".join(out), filled


def _exact_names(text: str, said: list[str], spans: list[_Span]) -> Iterator[str]:
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


def _render(frame: _Frame, filled: list[_Span]) -> str | None:
    """The frame's words with its marks filled by the transcript's slot values, in order."""
    values = iter(filled)
    out = frame.skeleton
    by_slot: dict[str, list[str]] = {}
    for span in values:
        by_slot.setdefault(span.slot, []).append(span.value)
    for list_name in frame.slots:
        slot = list_name if list_name in NAME_SLOTS else "number"
        if not by_slot.get(slot):
            return None
        out = out.replace(SLOT_MARK[slot], by_slot[slot].pop(0), 1)
    return re.sub(r"(\d) %", r"\1%", out)


def _triggers(
    sentences: tuple[str, ...], language: str
) -> tuple[Intents | None, dict[str, SlotList], list[str]]:
    """The home's sentence triggers as hassil matches them, their {lists} as free text (as Home
    Assistant makes them), and their sentences sampled (those without free text: a wildcard
    sentence is matched only as it is)."""
    if not sentences:
        return None, {}, []
    try:
        intents = Intents.from_dict(
            {"language": language, "intents": {TRIGGER: {"data": [{"sentences": list(sentences)}]}}}
        )
    except Exception:  # a template hassil cannot read: Home Assistant would not match it either
        _LOGGER.warning("Home Assistant's sentence triggers could not be read", exc_info=True)
        return None, {}, []
    free: dict[str, SlotList] = {}
    said: list[str] = []
    rng = random.Random(0)
    for data in intents.intents[TRIGGER].data:
        for sentence in data.sentences:
            named = _lists(sentence, {}, set())
            free |= {name: WildcardSlotList(name) for name in named}
            if not named:
                said += [" ".join(t.split()) for t, _ in _expand(sentence, {}, {}, rng, 50)]
    return intents, free, [s for s in dict.fromkeys(said) if s]


# --- Template sampling ------------------------------------------------------------------------

_INNER = 48  # variants kept per inner expression while sampling


def _frames(intents: Intents) -> Iterator[_Frame]:
    """Sampled sentences of every template that names something (name, area or floor)."""
    rng = random.Random(0)  # the same frames on every start
    for intent_name, intent in intents.intents.items():
        for data in intent.data:
            rules = {**intents.expansion_rules, **data.expansion_rules}
            lists = {**intents.slot_lists, **data.slot_lists}
            for sentence in data.sentences:
                used = _lists(sentence, rules, set())
                if not used & set(NAME_SLOTS):
                    continue
                if any(isinstance(lists.get(n), WildcardSlotList) for n in used):
                    continue  # free text ("add {item} to my list"): never a target
                seen: set[str] = set()
                for variant in _expand(sentence, rules, lists, rng, SAMPLES):
                    text, slots = variant
                    skeleton = " ".join(text.split())
                    if skeleton and skeleton not in seen:
                        seen.add(skeleton)
                        yield _Frame(skeleton, intent_name, slots)


def _lists(expr: Expression, rules: dict[str, Sentence], acc: set[str]) -> set[str]:
    if isinstance(expr, ListReference):
        acc.add(expr.list_name)
    elif isinstance(expr, RuleReference) and expr.rule_name in rules:
        _lists(rules[expr.rule_name], rules, acc)
    elif isinstance(expr, Sequence):
        for item in expr.items:
            _lists(item, rules, acc)
    return acc


_Variant = tuple[str, tuple[str, ...]]


def _expand(
    expr: Expression,
    rules: dict[str, Sentence],
    lists: dict[str, SlotList],
    rng: random.Random,
    limit: int,
) -> list[_Variant]:
    """At most ``limit`` texts of ``expr`` (all when there are fewer, else a fixed sample that
    keeps every alternative's first choice), slots as marks."""
    if isinstance(expr, TextChunk):
        return [(_normal(expr.text), ())]
    if isinstance(expr, ListReference):
        name = expr.list_name
        slot_list = lists.get(name)
        if name in NAME_SLOTS:
            return [(f" {SLOT_MARK[name]} ", (name,))]
        if isinstance(slot_list, RangeSlotList):
            return [(f" {SLOT_MARK['number']} ", (name,))]
        if isinstance(slot_list, TextSlotList):
            out: list[_Variant] = []
            for value in slot_list.values:
                out += _expand(value.text_in, rules, lists, rng, _INNER)
            return _cap(out, limit, rng)
        return []  # a list this home does not fill: no sentence through it
    if isinstance(expr, RuleReference):
        rule = rules.get(expr.rule_name)
        return _expand(rule, rules, lists, rng, limit) if rule is not None else []
    if isinstance(expr, Sequence):
        inner = min(limit, _INNER)
        if expr.type == SequenceType.ALTERNATIVE:
            out = []
            for item in expr.items:
                out += _expand(item, rules, lists, rng, inner)
            # Shortest first: "turn {name} off" before "turn all of the {name} off".
            return _cap(sorted(out, key=lambda v: len(v[0].split())), limit, rng)
        orders = (
            itertools.permutations(expr.items)
            if expr.type == SequenceType.PERMUTATION
            else [expr.items]
        )
        out = []
        for order in orders:
            parts = [_expand(item, rules, lists, rng, inner) for item in order]
            if any(not p for p in parts):
                continue
            out += _combine(parts, limit, rng)
        return _cap(out, limit, rng)
    return []


def _combine(parts: list[list[_Variant]], limit: int, rng: random.Random) -> list[_Variant]:
    """Every combination of the parts' variants when there are at most ``limit``; else the
    shortest half of them (the plain sentences people say), then random ones."""
    total = 1
    for part in parts:
        total *= len(part)
    if total <= limit:
        combos: Iterable[tuple[_Variant, ...]] = itertools.product(*parts)
    else:
        sizes = [[len(text.split()) for text, _ in part] for part in parts]
        start = (0,) * len(parts)
        heap = [(sum(size[0] for size in sizes), start)]
        seen = {start}
        picks: list[tuple[_Variant, ...]] = []
        while heap and len(picks) < limit // 2:
            cost, index = heapq.heappop(heap)
            picks.append(tuple(part[i] for part, i in zip(parts, index, strict=True)))
            for k, i in enumerate(index):
                if i + 1 < len(parts[k]):
                    step = (*index[:k], i + 1, *index[k + 1 :])
                    if step not in seen:
                        seen.add(step)
                        heapq.heappush(heap, (cost - sizes[k][i] + sizes[k][i + 1], step))
        while len(picks) < limit:
            picks.append(tuple(rng.choice(p) for p in parts))
        combos = picks
    return [("".join(t for t, _ in c), tuple(s for _, slots in c for s in slots)) for c in combos]


def _cap(out: list[_Variant], limit: int, rng: random.Random) -> list[_Variant]:
    """At most ``limit``: the first half as ordered (the shortest), then a random sample."""
    out = list(dict.fromkeys(out))
    if len(out) <= limit:
        return out
    kept = limit // 2
    return out[:kept] + rng.sample(out[kept:], limit - kept)


def _normal(text: str) -> str:
    """A template chunk as transcript words are compared (keeps its edge spaces)."""
    lead = " " if text[:1].isspace() else ""
    trail = " " if text[-1:].isspace() else ""
    return lead + " ".join(words(text)) + trail if words(text) else (" " if text else "")


class Assist:
    """Each language's ``Commands``, loaded in the background on first need: a request never
    waits for a load (its words go out as heard meanwhile), and a language Home Assistant has no
    sentences for is remembered as such."""

    def __init__(self) -> None:
        self._loaded: dict[str, Commands | None] = {}
        self._loading: set[str] = set()
        self._lock = threading.Lock()

    def get(self, language: str | None) -> Commands | None:
        """The language's commands if loaded; else start loading them and answer None."""
        code = (language or "en").split("-")[0].split("_")[0].lower()
        with self._lock:
            if code in self._loaded:
                return self._loaded[code]
            if code in self._loading:
                return None
            self._loading.add(code)
        threading.Thread(target=self.load, args=(code,), name="assist-load", daemon=True).start()
        return None

    def load(self, code: str) -> Commands | None:
        """Blocking: build the language's commands (seconds) and keep them."""
        commands: Commands | None = None
        try:
            commands = Commands(code)
            _LOGGER.info("Home Assistant sentences for %s: %d", code, commands.frames())
        except LookupError:
            commands = None
        except Exception:  # a broken intents package must not take transcription with it
            _LOGGER.exception("Home Assistant sentences for %s failed to load", code)
            commands = None
        if commands is not None:
            _settle()
        with self._lock:
            self._loaded[code] = commands
            self._loading.discard(code)
        return commands


def _settle() -> None:
    """Move what is in memory now (the sentences, a home's names: hundreds of thousands of
    objects that live as long as the process) out of the garbage collector's sight: otherwise
    each full collection walks them all, about 90 ms with the GIL held, and a request waits."""
    gc.collect()
    gc.freeze()
