"""Home Assistant's sentence templates read into the sentences people say: every template that
names something sampled into frames (its words, one mark per slot), and a home's sentence
triggers as hassil matches them."""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hassil import Intents
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

from .hearing import words

_LOGGER = logging.getLogger("wyoming_whisper.commands")  # the package's: log lines as before

SAMPLES = 300  # sentences sampled per template: enough variety, bounded memory
_INNER = 48  # variants kept per inner expression while sampling
# Placeholders in a skeleton: one character per slot, never produced by normalisation.
SLOT_MARK = {"name": "\u2460", "area": "\u2461", "floor": "\u2462", "number": "\u2463"}
NAME_SLOTS = ("name", "area", "floor")
TRIGGER = "SentenceTrigger"  # the intent of a home's own sentence (an automation's trigger)


@dataclass(frozen=True)
class Frame:
    """One command sentence of a template: words with one mark per slot."""

    skeleton: str  # normalised words, slots as SLOT_MARK characters
    intent: str
    slots: tuple[str, ...]  # the list name behind each mark, in order


def triggers(
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


def frames(intents: Intents) -> Iterator[Frame]:
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
                        yield Frame(skeleton, intent_name, slots)


def _lists(expr: Expression, rules: dict[str, Sentence], acc: set[str]) -> set[str]:
    """The slot lists ``expr`` names, through its rules: which templates name something."""
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
