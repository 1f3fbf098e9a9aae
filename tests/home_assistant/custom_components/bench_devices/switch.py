from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity

from . import specs
from .entity import BenchEntity


async def async_setup_entry(hass, entry, add) -> None:  # type: ignore[no-untyped-def]
    add([BenchSwitch(eid, opts) for eid, opts in specs(entry, "switch")])


class BenchSwitch(BenchEntity, SwitchEntity):
    @property
    def is_on(self) -> bool:
        return self.values.get("state", "off") == "on"

    async def async_turn_on(self, **kwargs: Any) -> None:
        self.changed(state="on")

    async def async_turn_off(self, **kwargs: Any) -> None:
        self.changed(state="off")
