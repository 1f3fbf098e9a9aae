"""Which names are read from Home Assistant, in which order (hass_names.py's pure part)."""

from __future__ import annotations

from wyoming_whisper.hass_names import rank_names, websocket_url


def test_websocket_url() -> None:
    assert websocket_url("http://ha.local:8123") == "ws://ha.local:8123/api/websocket"
    assert websocket_url("https://ha.example/") == "wss://ha.example/api/websocket"
    assert websocket_url("ws://supervisor/core/websocket") == "ws://supervisor/core/websocket"


def test_exposed_entities_first_with_aliases_then_areas_and_floors() -> None:
    exposed = {
        "light.plantuary": {"conversation": True},
        "sensor.hidden": {"conversation": False},
        "climate.ecobee": {"conversation": True},
    }
    entities = [
        {"entity_id": "light.plantuary", "name": None, "original_name": "Lamp", "aliases": ["Pl"]},
        {"entity_id": "sensor.hidden", "name": "Secret", "aliases": []},
    ]
    states = [
        {"entity_id": "light.plantuary", "attributes": {"friendly_name": "Plantuary lamp"}},
        {"entity_id": "climate.ecobee", "attributes": {"friendly_name": "Ecobee"}},
    ]
    areas = [{"name": "Snug", "aliases": ["Den"]}]
    floors = [{"name": "Mezzanine", "aliases": []}, {"name": "Snug"}]
    names = rank_names(exposed, entities, states, areas, floors)
    assert names == ("Plantuary lamp", "Pl", "Ecobee", "Snug", "Den", "Mezzanine")
