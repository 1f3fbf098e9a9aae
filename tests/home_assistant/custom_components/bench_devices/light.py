from __future__ import annotations

from typing import Any

from homeassistant.components.light import ATTR_BRIGHTNESS, ColorMode, LightEntity

from . import specs
from .entity import BenchEntity


async def async_setup_entry(hass, entry, add) -> None:  # type: ignore[no-untyped-def]
    add([BenchLight(eid, opts) for eid, opts in specs(entry, "light")])


class BenchLight(BenchEntity, LightEntity):
    _attr_supported_color_modes = {ColorMode.BRIGHTNESS}
    _attr_color_mode = ColorMode.BRIGHTNESS

    @property
    def is_on(self) -> bool:
        return self.values.get("state", "off") == "on"

    @property
    def brightness(self) -> int:
        return round(self.values.get("brightness_pct", 100) * 255 / 100)

    async def async_turn_on(self, **kwargs: Any) -> None:
        values: dict[str, Any] = {"state": "on"}
        if ATTR_BRIGHTNESS in kwargs:
            values["brightness_pct"] = round(kwargs[ATTR_BRIGHTNESS] * 100 / 255)
        self.changed(**values)

    async def async_turn_off(self, **kwargs: Any) -> None:
        self.changed(state="off")
