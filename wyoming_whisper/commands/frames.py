"""The command sentences nearest a transcript: its names and numbers become slot marks, and its
words are compared with every frame that has the same slots, by spelling and by sound."""

from __future__ import annotations

import re

from hassil import Intents
from rapidfuzz import fuzz, process

from .hearing import Span, sound
from .templates import NAME_SLOTS, SLOT_MARK, Frame, frames


class FrameIndex:
    """Home Assistant's frames for one language, by their set of slots, with each frame's words
    and sound computed once (compared both ways)."""

    def __init__(self, intents: Intents) -> None:
        self._by_slots: dict[tuple[str, ...], tuple[list[Frame], list[str], list[str]]] = {}
        for frame in frames(intents):
            slots = tuple(sorted(s if s in NAME_SLOTS else "number" for s in frame.slots))
            found, spelled, sounds = self._by_slots.setdefault(slots, ([], [], []))
            found.append(frame)
            spelled.append(frame.skeleton)
            sounds.append(sound(frame.skeleton))

    def __len__(self) -> int:
        return sum(len(found) for found, _, _ in self._by_slots.values())

    def nearest(
        self, said: list[str], spans: list[Span]
    ) -> tuple[list[Span], list[tuple[Frame, float]]]:
        """The transcript's slots (names and numbers), and the template sentences with the same
        slots nearest its other words, nearest first with their scores."""
        spans = spans + _number_spans(said, spans)
        skeleton, filled = _skeleton(said, spans)
        found = self._by_slots.get(tuple(sorted(s.slot for s in filled)))
        if found is None:
            return filled, []
        candidates, spelled, sounds = found
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
        return filled, [(candidates[i], scores[i]) for i in ranked]


def render(frame: Frame, filled: list[Span]) -> str | None:
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


def _number_spans(said: list[str], taken: list[Span]) -> list[Span]:
    """The transcript's numbers ("50", "50%") outside the names heard."""
    spans = []
    for i, word in enumerate(said):
        digits = word.rstrip("%")
        if digits.isdigit() and all(not (s.start <= i < s.end) for s in taken):
            spans.append(Span(i, i + 1, "number", digits, 100.0))
    return spans


def _skeleton(said: list[str], spans: list[Span]) -> tuple[str, list[Span]]:
    """The transcript's words with each slot's span replaced by its mark."""
    out: list[str] = []
    filled: list[Span] = []
    i = 0
    for span in sorted(spans, key=lambda s: s.start):
        out += said[i : span.start]
        mark = SLOT_MARK[span.slot]
        out += [mark, "%"] if said[span.end - 1].endswith("%") else [mark]
        filled.append(span)
        i = span.end
    out += said[i:]
    return " ".join(out), filled
