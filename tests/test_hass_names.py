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
