"""What Home Assistant understands: its sentences for one language matched by ``hassil`` as its
default agent matches them, with a home's names (prepared once per ``Home``), and its parses
with free text where the names go."""

from __future__ import annotations

import gc
import itertools
import threading
from dataclasses import dataclass, field

from hassil import Intents, recognize_all, recognize_best
from hassil.intents import SlotList, WildcardSlotList
from hassil.recognize import RecognizeResult
from home_assistant_intents import get_intents

from ..linear_patterns import linear
from .hearing import HomeNames
from .home import Home
from .templates import NAME_SLOTS, triggers

PARSES = 12  # of Home Assistant's sentences, with free text for the names
KEPT_PARSES = 8  # texts whose parses are kept (the text-only step's, for the alternatives)

Parse = tuple[str, list[tuple[str, str]]]  # an intent, and the words where each name goes


@dataclass
class PreparedHome:
    """A home's slot lists, spoken names and sentence triggers, built once per ``Home``."""

    home: Home
    lists: dict[str, SlotList]
    names: HomeNames
    triggers: Intents | None = None  # the sentence triggers' sentences, as Home Assistant has them
    trigger_lists: dict[str, SlotList] = field(default_factory=dict)  # their {lists}: free text
    said: list[str] = field(default_factory=list)  # sampled trigger sentences, as words
    parses: dict[str, list[Parse]] = field(default_factory=dict)  # the last texts' free places


class Recognizer:
    """Home Assistant's command sentences for one language, and hassil's answers over them: the
    checks every near-miss must pass before it is answered (``Commands`` searches for them)."""

    def __init__(self, language: str) -> None:
        data = get_intents(language)
        if data is None:
            raise LookupError(f"Home Assistant has no sentences for {language!r}")
        self.language = language
        self.intents = Intents.from_dict(data)
        linear(self.intents)  # (its patterns in RE2: a question that is no command cost 100s of ms)
        self._prepared: PreparedHome | None = None
        self._only: dict[str, Intents] = {}  # one intent's sentences, for checking alternatives
        self._lock = threading.Lock()

    def _prepare(self, home: Home) -> PreparedHome:
        with self._lock:
            cached = self._prepared
            if cached is None or (cached.home is not home and cached.home != home):
                prepared = PreparedHome(home, home.slot_lists(), HomeNames.of(home))
                prepared.triggers, prepared.trigger_lists, prepared.said = triggers(
                    home.sentences, self.language
                )
                self._prepared = cached = prepared
                settle()
            return cached

    def _trigger(self, text: str, prepared: PreparedHome) -> bool:
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
        return found.intent.name if found is not None and _resolved(found) else None

    def understands(self, text: str, home: Home) -> str | None:
        """The intent of the first reading Home Assistant finds in ``text``, if any: whether it
        is a command, without ranking every reading as ``recognize`` does (on the bench's
        commands 5 ms at the median where ranking takes 9)."""
        for found in recognize_all(
            text, self.intents, slot_lists=self._prepare(home).lists, language=self.language
        ):
            if _resolved(found):
                return found.intent.name
        return None

    def _understood(self, text: str, intent: str, prepared: PreparedHome) -> bool:
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
        return found is not None and _resolved(found)

    def _skipped(self, said: list[str]) -> str:
        """The words Home Assistant skips that the transcript begins with ("please"): kept in
        front of an alternative, so the audio compares like with like."""
        for skip in sorted(self.intents.skip_words, key=len, reverse=True):
            if said[: len(skip.split())] == skip.split():
                return skip
        return ""

    def _free_places(self, text: str, prepared: PreparedHome) -> list[Parse]:
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
        found: list[Parse] = []
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


def settle() -> None:
    """Move what is in memory now (the sentences, a home's names: hundreds of thousands of
    objects that live as long as the process) out of the garbage collector's sight: otherwise
    each full collection walks them all, about 90 ms with the GIL held, and a request waits."""
    gc.collect()
    gc.freeze()


def _resolved(found: RecognizeResult) -> bool:
    """A reading Home Assistant can act on: no entity's value left as an unresolved mapping."""
    return not any(isinstance(e.value, dict) for e in found.entities.values())
