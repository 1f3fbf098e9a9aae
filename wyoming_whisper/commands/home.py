"""The names of a home Home Assistant matches commands against: data, and its slot lists."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hassil.intents import SlotList, TextSlotList

CLIENT_NAMES = 500  # a client's own names (transcript_names) matched against, at most
NAME_CHARS = 100  # a longer "name" is not one


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
