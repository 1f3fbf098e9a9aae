"""Names heard in a transcript's words: a home's names found by spelling or by sound, even one
sound off ("Plantery lamp" for "Plantuary lamp"), and the words where a name goes read as the
name they are nearest to."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from .home import Home

NAME_SCORE = 80.0  # a span of the transcript heard as a name (rapidfuzz ratio, 0-100)
PLACED_SCORE = 65.0  # words where a name goes, against the nearest name of that kind
PLACED_MARGIN = 10.0  # another name this near: unsure
# Words of a command's frame, never the edge of a name unless the name has them there.
FILLERS = frozenset(
    ("the", "a", "an", "my", "our", "your", "all", "in", "on", "off", "of", "to", "at", "and")
)
SHORT_NAME = 5  # names of this many letters or fewer must be heard exactly
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*%?|%")

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


@dataclass
class HomeNames:
    """A home's names and aliases as words, with their spelling and sound computed once: a
    request compares its words against all of them."""

    spoken: list[tuple[list[str], str, str]]  # (words, slot, value)
    max_words: int
    spelled: list[str]  # each spoken name's words, joined
    sounds: list[str]  # and their sound

    @staticmethod
    def of(home: Home) -> HomeNames:
        spoken = [(words(said), slot, value) for said, slot, value in home.spoken()]
        spoken = [s for s in spoken if s[0]]
        longest = max((len(w) for w, _, _ in spoken), default=1)
        spelled = [" ".join(w) for w, _, _ in spoken]
        return HomeNames(spoken, longest, spelled, [sound(n) for n in spelled])

    def similarity(self, heard: str, heard_sound: str, index: int) -> float:
        """``similarity`` against the ``index``-th name, its spelling and sound computed once."""
        return max(
            fuzz.ratio(heard, self.spelled[index]), fuzz.ratio(heard_sound, self.sounds[index])
        )


@dataclass
class Span:
    """Words of the transcript heard as one slot's value (a name, an area, a floor, a number)."""

    start: int
    end: int
    slot: str  # name, area, floor or number
    value: str
    score: float


def name_spans(said: list[str], names: HomeNames, least: float = NAME_SCORE) -> list[Span]:
    """The names of the home heard in the transcript, best first, none overlapping."""
    found: list[Span] = []
    for start in range(len(said)):
        for length in range(1, min(names.max_words + 1, len(said) - start) + 1):
            heard = " ".join(said[start : start + length])
            edges = (said[start], said[start + length - 1])
            # Near by spelling or by sound (rapidfuzz over every name at once: a home's
            # thousands of names cost milliseconds), then each candidate's rules.
            heard_sound = sound(heard)
            near: set[int] = set()
            for query, choices in ((heard, names.spelled), (heard_sound, names.sounds)):
                picked = process.extract(
                    query, choices, scorer=fuzz.ratio, limit=16, score_cutoff=least
                )
                near.update(index for _, _, index in picked)
            for index in sorted(near):
                name_words, slot, value = names.spoken[index]
                if abs(len(name_words) - length) > 1:
                    continue
                if (edges[0] in FILLERS and edges[0] != name_words[0]) or (
                    edges[1] in FILLERS and edges[1] != name_words[-1]
                ):
                    continue  # "the light" is not "Kitchen light": a name has its own words
                name = names.spelled[index]
                if len(name.replace(" ", "")) <= SHORT_NAME:
                    score = 100.0 if heard == name else 0.0
                else:
                    score = names.similarity(heard, heard_sound, index)
                if score >= least:
                    found.append(Span(start, start + length, slot, value, score))
    found.sort(key=lambda s: (-s.score, -(s.end - s.start), s.start))
    chosen: list[Span] = []
    for span in found:
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


def nearest_name(heard: str, slot: str, names: HomeNames) -> tuple[str, float] | None:
    """The one name of this kind (name, area, floor) the words are near; None when none is, or
    when another is nearly as near."""
    core = _core(words(heard))
    if not core:
        return None
    spelled = " ".join(core)
    said = sound(spelled)
    scored = sorted(
        (
            (names.similarity(spelled, said, index), value)
            for index, (w, kind, value) in enumerate(names.spoken)
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


def nearest_names(heard: str, slot: str, names: HomeNames, limit: int, least: float) -> list[str]:
    """The ``limit`` names of this kind (name, area, floor) nearest the words, any length, each
    at least ``least`` near."""
    core = _core(words(heard))
    if not core:
        return []
    spelled = " ".join(core)
    said = sound(spelled)
    scored: dict[str, float] = {}
    for index, (_, kind, value) in enumerate(names.spoken):
        if kind == slot:
            score = names.similarity(spelled, said, index)
            if score >= least:
                scored[value] = max(score, scored.get(value, 0.0))
    return sorted(scored, key=lambda v: -scored[v])[:limit]


def keep_edges(heard: str, value: str) -> str:
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


def _core(said: list[str]) -> list[str]:
    """A place's words without the frame's words at its edges ("the sound" -> "sound")."""
    while said and said[0] in FILLERS:
        said = said[1:]
    while said and said[-1] in FILLERS:
        said = said[:-1]
    return said
