"""Entities that only store what they are told, for bench/assist.py: lights, switches, fans,
covers, locks, climate and media players named in configuration.yaml
(``bench_devices: {entities: {entity_id: {name, ...options}}}``), a device that supports
Assist's timers ("Bench satellite", its events in ``sensor.bench_timers``), and services:

- ``bench_devices.set`` (entity_id, values): set what an entity holds (``state`` and the
  attributes its platform knows) without any intent, to put it in a known state;
- ``bench_devices.reset_timers``: cancel every timer the satellite started, clear the sensor.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.components.intent import async_register_timer_handler
from homeassistant.components.intent.timers import TIMER_DATA, TimerEventType, TimerInfo
from homeassistant.config_entries import SOURCE_IMPORT, ConfigEntry
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.typing import ConfigType

DOMAIN = "bench_devices"
PLATFORMS = ["climate", "cover", "fan", "light", "lock", "media_player", "sensor", "switch"]
SATELLITE = "satellite"


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    hass.data[DOMAIN] = {"entities": {}, "timers": {}, "sensor": None}
    if DOMAIN in config:
        hass.async_create_task(
            hass.config_entries.flow.async_init(
                DOMAIN, context={"source": SOURCE_IMPORT}, data=dict(config[DOMAIN])
            )
        )

    async def set_values(call: ServiceCall) -> None:
        ids = call.data["entity_id"]
        for entity_id in [ids] if isinstance(ids, str) else ids:
            hass.data[DOMAIN]["entities"][entity_id].set_values(dict(call.data["values"]))

    async def reset_timers(call: ServiceCall) -> None:
        manager = hass.data[TIMER_DATA]
        for timer_id in list(hass.data[DOMAIN]["timers"]):
            if timer_id in manager.timers:
                manager.cancel_timer(timer_id)
        hass.data[DOMAIN]["timers"].clear()
        sensor = hass.data[DOMAIN]["sensor"]
        if sensor is not None:
            sensor.clear()

    schema = vol.Schema(
        {vol.Required("entity_id"): vol.Any(str, [str]), vol.Required("values"): dict}
    )
    hass.services.async_register(DOMAIN, "set", set_values, schema=schema)
    hass.services.async_register(DOMAIN, "reset_timers", reset_timers)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, SATELLITE)},
        name="Bench satellite",
    )

    @callback
    def on_timer(event: TimerEventType, timer: TimerInfo) -> None:
        timers = hass.data[DOMAIN]["timers"]
        if event in (TimerEventType.CANCELLED, TimerEventType.FINISHED):
            timers.pop(timer.id, None)
        else:
            timers[timer.id] = timer
        sensor = hass.data[DOMAIN]["sensor"]
        if sensor is not None:
            sensor.saw(event, timer, len(timers))

    entry.async_on_unload(async_register_timer_handler(hass, device.id, on_timer))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


def specs(entry: ConfigEntry, domain: str) -> list[tuple[str, dict[str, Any]]]:
    """(entity_id, options) of this platform's entities in the entry."""
    entities: dict[str, dict[str, Any]] = entry.data.get("entities", {})
    return [(eid, opts) for eid, opts in entities.items() if eid.split(".")[0] == domain]
