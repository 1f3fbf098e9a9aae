from __future__ import annotations

from typing import Any

from homeassistant.components.climate import (
    ATTR_TEMPERATURE,
    ClimateEntity,
    ClimateEntityFeature,
    HVACMode,
)
from homeassistant.const import UnitOfTemperature

from . import specs
from .entity import BenchEntity


async def async_setup_entry(hass, entry, add) -> None:  # type: ignore[no-untyped-def]
    add([BenchClimate(eid, opts) for eid, opts in specs(entry, "climate")])


class BenchClimate(BenchEntity, ClimateEntity):
    _attr_supported_features = ClimateEntityFeature.TARGET_TEMPERATURE
    _attr_hvac_modes = [HVACMode.HEAT, HVACMode.OFF]
    _attr_hvac_mode = HVACMode.HEAT
    _attr_temperature_unit = UnitOfTemperature.CELSIUS
    _attr_target_temperature_step = 0.5

    @property
    def current_temperature(self) -> float:
        return float(
            self.values.get("current_temperature", self.options.get("current_temperature", 20))
        )

    @property
    def target_temperature(self) -> float:
        return float(self.values.get("temperature", 20))

    async def async_set_temperature(self, **kwargs: Any) -> None:
        self.changed(temperature=kwargs[ATTR_TEMPERATURE])

    async def async_set_hvac_mode(self, hvac_mode: HVACMode) -> None:
        self._attr_hvac_mode = hvac_mode
        self.async_write_ha_state()
