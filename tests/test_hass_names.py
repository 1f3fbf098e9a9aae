"""Which names are read from Home Assistant, in which order (hass_names.py's pure part)."""

from __future__ import annotations

from wyoming_whisper.hass_names import rank_names, read_home, websocket_url


def test_websocket_url() -> None:
    assert websocket_url("http://ha.local:8123") == "ws://ha.local:8123/api/websocket"
    assert websocket_url("https://ha.example/") == "wss://ha.example/api/websocket"
    assert websocket_url("ws://supervisor/core/websocket") == "ws://supervisor/core/websocket"


def test_areas_in_use_first_then_spoken_entities_with_aliases_then_the_rest() -> None:
    exposed = {
        "light.plantuary": {"conversation": True},
        "sensor.hidden": {"conversation": False},
        "sensor.damp": {"conversation": True},
        "climate.ecobee": {"conversation": True},
    }
    entities = [
        {"entity_id": "light.plantuary", "name": None, "original_name": "Lamp", "aliases": ["Pl"]},
        {"entity_id": "sensor.hidden", "name": "Secret", "aliases": []},
        {"entity_id": "sensor.damp", "name": "Damp meter", "device_id": "d1"},
    ]
    states = [
        {"entity_id": "light.plantuary", "attributes": {"friendly_name": "Plantuary lamp"}},
        {"entity_id": "climate.ecobee", "attributes": {"friendly_name": "Ecobee"}},
    ]
    areas = [
        {"area_id": "snug", "name": "Snug", "aliases": ["Den"], "floor_id": "m"},
        {"area_id": "attic", "name": "Attic"},
    ]
    floors = [{"floor_id": "m", "name": "Mezzanine", "aliases": []}, {"name": "Cellar"}]
    devices = [{"id": "d1", "area_id": "snug"}]
    home = read_home(exposed, entities, states, areas, floors, devices=devices)
    # The damp meter is in the Snug through its device: the Snug and its floor lead.
    assert rank_names(home) == (
        "Snug",
        "Den",
        "Mezzanine",
        "Plantuary lamp",
        "Pl",
        "Ecobee",
        "Damp meter",
        "Attic",
        "Cellar",
    )
    assert {e.name: e.area for e in home.entities} == {
        "Plantuary lamp": None,
        "Damp meter": "Snug",
        "Ecobee": None,
    }


async def test_a_close_mid_exchange_is_a_connection_error() -> None:
    """aiohttp's receive_json raises a TypeError on a close frame; the reader's own receive says
    what happened, so /health shows it and the reader retries."""
    import asyncio

    import aiohttp
    from aiohttp import web

    from wyoming_whisper.hass_names import _receive

    async def close_at_once(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/ws", close_at_once)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws,
        ):
            try:
                await asyncio.wait_for(_receive(ws), 5)
            except ConnectionError as err:
                assert "closed" in str(err)
            else:
                raise AssertionError("no ConnectionError")
    finally:
        await runner.cleanup()
