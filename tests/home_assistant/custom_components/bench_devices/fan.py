from __future__ import annotations

from typing import Any

from homeassistant.components.fan import FanEntity, FanEntityFeature

from . import specs
from .entity import BenchEntity


async def async_setup_entry(hass, entry, add) -> None:  # type: ignore[no-untyped-def]
    add([BenchFan(eid, opts) for eid, opts in specs(entry, "fan")])


class BenchFan(BenchEntity, FanEntity):
    _attr_supported_features = FanEntityFeature.TURN_ON | FanEntityFeature.TURN_OFF

    @property
    def is_on(self) -> bool:
        return self.values.get("state", "off") == "on"

    async def async_turn_on(self, percentage: int | None = None, preset_mode: str | None = None,
                            **kwargs: Any) -> None:  # fmt: skip
        self.changed(state="on")

    async def async_turn_off(self, **kwargs: Any) -> None:
        self.changed(state="off")
