from __future__ import annotations

from typing import Any

from homeassistant.components.cover import ATTR_POSITION, CoverEntity, CoverEntityFeature

from . import specs
from .entity import BenchEntity


async def async_setup_entry(hass, entry, add) -> None:  # type: ignore[no-untyped-def]
    add([BenchCover(eid, opts) for eid, opts in specs(entry, "cover")])


class BenchCover(BenchEntity, CoverEntity):
    """``state`` open/closed is position 100/0; ``current_position`` sets it directly."""

    _attr_supported_features = (
        CoverEntityFeature.OPEN | CoverEntityFeature.CLOSE | CoverEntityFeature.SET_POSITION
    )

    def __init__(self, entity_id: str, options: dict[str, Any]) -> None:
        super().__init__(entity_id, options)
        self._attr_device_class = options.get("device_class")

    def set_values(self, values: dict[str, Any], write: bool = True) -> None:
        values = dict(values)
        state = values.pop("state", None)
        if state is not None:
            values["current_position"] = 100 if state == "open" else 0
        super().set_values(values, write)

    @property
    def current_cover_position(self) -> int:
        return int(self.values.get("current_position", 0))

    @property
    def is_closed(self) -> bool:
        return self.current_cover_position == 0

    async def async_open_cover(self, **kwargs: Any) -> None:
        self.changed(current_position=100)

    async def async_close_cover(self, **kwargs: Any) -> None:
        self.changed(current_position=0)

    async def async_set_cover_position(self, **kwargs: Any) -> None:
        self.changed(current_position=int(kwargs[ATTR_POSITION]))
