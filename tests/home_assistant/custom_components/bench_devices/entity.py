"""The base of every bench entity: a name, a dict of values, set by the service or by intents."""

from __future__ import annotations

from typing import Any

from homeassistant.helpers.entity import Entity

from . import DOMAIN


class BenchEntity(Entity):
    _attr_should_poll = False
    _attr_has_entity_name = False

    def __init__(self, entity_id: str, options: dict[str, Any]) -> None:
        self.entity_id = entity_id
        self._attr_unique_id = entity_id
        self._attr_name = options["name"]
        self.options = options
        self.values: dict[str, Any] = {}
        self.set_values(options.get("initial", {}), write=False)

    async def async_added_to_hass(self) -> None:
        self.hass.data[DOMAIN]["entities"][self.entity_id] = self

    def set_values(self, values: dict[str, Any], write: bool = True) -> None:
        self.values.update(values)
        if write:
            self.async_write_ha_state()

    def changed(self, **values: Any) -> None:
        self.set_values(values)
