"""sensor.bench_timers: how many of the satellite's timers run, and the last timer event."""

from __future__ import annotations

from typing import Any

from homeassistant.components.intent.timers import TimerEventType, TimerInfo
from homeassistant.components.sensor import SensorEntity
from homeassistant.helpers.device_registry import DeviceInfo

from . import DOMAIN, SATELLITE


async def async_setup_entry(hass, entry, add) -> None:  # type: ignore[no-untyped-def]
    add([BenchTimers()])


class BenchTimers(SensorEntity):
    _attr_should_poll = False
    _attr_has_entity_name = False
    _attr_name = "Bench timers"
    _attr_unique_id = "bench_timers"
    _attr_device_info = DeviceInfo(identifiers={(DOMAIN, SATELLITE)})

    def __init__(self) -> None:
        self.entity_id = "sensor.bench_timers"
        self._attr_native_value = 0
        self._attr_extra_state_attributes: dict[str, Any] = {}

    async def async_added_to_hass(self) -> None:
        self.hass.data[DOMAIN]["sensor"] = self

    def saw(self, event: TimerEventType, timer: TimerInfo, active: int) -> None:
        self._attr_native_value = active
        self._attr_extra_state_attributes = {
            "last_event": str(event),
            "last_name": timer.name,
            "last_seconds": timer.seconds,
            "last_active": timer.is_active,
        }
        self.async_write_ha_state()

    def clear(self) -> None:
        self._attr_native_value = 0
        self._attr_extra_state_attributes = {}
        self.async_write_ha_state()
