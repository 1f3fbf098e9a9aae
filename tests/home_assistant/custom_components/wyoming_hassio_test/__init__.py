"""Test helper: feed a Supervisor-style (source "hassio") discovery to a config flow.

Without a Supervisor there is no way to start a flow with source "hassio" over
REST/websocket (the REST flow view forces source "user"). This service calls
hass.config_entries.flow.async_init the way homeassistant/components/hassio/discovery.py
does, and returns the flow result.

POST /api/services/wyoming_hassio_test/discover?return_response
  {"uri": "tcp://127.0.0.1:10300", "name": "Fake ASR", "slug": "core_fake", "uuid": "..."}
"""

from __future__ import annotations

import uuid as uuid_mod

import voluptuous as vol
from homeassistant.config_entries import SOURCE_HASSIO
from homeassistant.core import HomeAssistant, ServiceCall, SupportsResponse
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.discovery_flow import DiscoveryKey
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.typing import ConfigType

DOMAIN = "wyoming_hassio_test"
CONFIG_SCHEMA = cv.empty_config_schema(DOMAIN)

SCHEMA = vol.Schema(
    {
        vol.Required("uri"): str,
        vol.Optional("name", default="Fake Wyoming add-on"): str,
        vol.Optional("slug", default="core_fake_wyoming"): str,
        vol.Optional("uuid"): str,
        vol.Optional("domain", default="wyoming"): str,
    }
)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    async def discover(call: ServiceCall):
        uuid = call.data.get("uuid") or uuid_mod.uuid4().hex
        result = await hass.config_entries.flow.async_init(
            call.data["domain"],
            context={
                "source": SOURCE_HASSIO,
                "discovery_key": DiscoveryKey(domain="hassio", key=uuid, version=1),
            },
            data=HassioServiceInfo(
                config={"uri": call.data["uri"]},
                name=call.data["name"],
                slug=call.data["slug"],
                uuid=uuid,
            ),
        )
        return {
            "flow_id": result.get("flow_id"),
            "type": str(result.get("type")),
            "step_id": result.get("step_id"),
            "reason": result.get("reason"),
        }

    hass.services.async_register(
        DOMAIN,
        "discover",
        discover,
        schema=SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    return True
