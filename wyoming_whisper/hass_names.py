"""The names Assist can act on, read from Home Assistant, to bias decoding towards them.

Home Assistant's Wyoming integration sends only ``transcribe`` with a language, so entity and area
names ("Plantuary lamp", "Ecobee") never reach the decoder on their own. ``HassNames`` reads
them over Home Assistant's websocket API (the entities exposed to the conversation agent, their
names and aliases; areas and floors with their aliases), refreshes them when a registry changes,
and hands them, ranked, to every request that brings no names of its own.

A Home Assistant that is down, slow or refuses the token never delays a transcription: requests
use whatever was read last (or nothing), the reader logs each failure streak once and retries
with backoff, and ``status`` says what it has for ``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

import aiohttp

from .commands.home import Entity, Home, Place

_LOGGER = logging.getLogger(__name__)
SUPERVISOR_WEBSOCKET = "ws://supervisor/core/websocket"
REGISTRY_EVENTS = ("entity_registry_updated", "area_registry_updated", "floor_registry_updated")
OPTIONAL = ("devices", "sentences")  # read when Home Assistant answers them
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
TIMEOUT = 10.0  # one websocket command
# What an unreachable or unhappy Home Assistant raises: logged without a traceback.
EXPECTED = (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError)


def websocket_url(url: str) -> str:
    """``http://host:8123`` (or ws://...) -> ``ws://host:8123/api/websocket``."""
    url = url.rstrip("/")
    if url.startswith("http"):
        url = "ws" + url[4:]
    return url if url.endswith("/websocket") else url + "/api/websocket"


# Domains whose entities people name out loud ("turn on the X", "lock the X"): their names are
# worth the prompt's budget before sensors and the like, which are asked about by area.
SPOKEN_DOMAINS = frozenset(
    {"light", "switch", "fan", "cover", "lock", "climate", "media_player", "input_boolean"}
    | {"vacuum", "scene", "script", "todo", "valve", "humidifier", "water_heater"}
)


def rank_names(home: Home) -> tuple[str, ...]:
    """Assist's names most spoken first, each alias beside its name, as the prompt's budget
    (hotwords) keeps a prefix: the areas that hold an exposed entity and their floors (commands
    name them: "the lights in the Snug"), the entities of spoken domains, the other entities,
    then the areas and floors that hold nothing exposed."""
    used_areas = {e.area for e in home.entities if e.area}
    used_floors = {a.floor for a in home.areas if a.name in used_areas and a.floor}
    names: list[str] = []

    def add(places: Iterable[Place]) -> None:
        for place in places:
            names.extend((place.name, *place.aliases))

    add(a for a in home.areas if a.name in used_areas)
    add(f for f in home.floors if f.name in used_floors)
    for spoken in (True, False):
        for entity in home.entities:
            if (entity.domain in SPOKEN_DOMAINS) == spoken:
                names.extend((entity.name, *entity.aliases))
    add(a for a in home.areas if a.name not in used_areas)
    add(f for f in home.floors if f.name not in used_floors)
    return tuple(dict.fromkeys(n for n in names if n))


def read_home(
    exposed: dict[str, Any],
    entities: list[dict[str, Any]],
    states: list[dict[str, Any]],
    areas: list[dict[str, Any]],
    floors: list[dict[str, Any]],
    devices: list[dict[str, Any]] | None = None,
    sentences: list[str] | None = None,
) -> Home:
    """The names as Home Assistant's default agent matches them: each exposed entity with its
    domain, device class (the context its sentence templates require) and area (its own, else
    its device's), areas with their floors, floors, and the sentences of sentence triggers."""
    spoken = {e for e, where in exposed.items() if where.get("conversation")}
    attributes = {s["entity_id"]: s.get("attributes") or {} for s in states}
    registry = {e.get("entity_id"): e for e in entities}
    area_names = {a.get("area_id"): a.get("name") for a in areas if a.get("area_id")}
    device_areas = {d.get("id"): d.get("area_id") for d in devices or () if d.get("id")}
    found = []
    for entity_id in sorted(spoken, key=lambda e: (e not in registry, e)):
        entry = registry.get(entity_id) or {}
        attrs = attributes.get(entity_id, {})
        # Home Assistant matches the state's name (friendly_name), as its default agent does.
        name = attrs.get("friendly_name") or entry.get("name") or entry.get("original_name")
        if not name:
            continue
        area_id = entry.get("area_id") or device_areas.get(entry.get("device_id"))
        found.append(
            Entity(
                name=str(name).strip(),
                domain=str(entity_id).split(".", 1)[0],
                aliases=_clean(entry.get("aliases")),
                device_class=attrs.get("device_class"),
                area=area_names.get(area_id),
            )
        )
    floor_names = {f.get("floor_id"): f.get("name") for f in floors if f.get("floor_id")}

    def places(rows: list[dict[str, Any]]) -> tuple[Place, ...]:
        return tuple(
            Place(
                str(r["name"]).strip(), _clean(r.get("aliases")), floor_names.get(r.get("floor_id"))
            )
            for r in rows
            if str(r.get("name") or "").strip()
        )

    said = tuple(str(t).strip() for t in sentences or () if str(t).strip())
    return Home(tuple(found), places(areas), places(floors), said)


def _clean(aliases: Any) -> tuple[str, ...]:
    return tuple(a for a in (str(x).strip() for x in aliases or ()) if a)


async def _receive(ws: aiohttp.ClientWebSocketResponse) -> Any:
    """The next JSON message; a socket closed mid-exchange (the Supervisor's proxy does that when
    Core is unreachable) is a ``ConnectionError``, not aiohttp's ``TypeError`` for a close frame."""
    msg = await ws.receive()
    if msg.type in (
        aiohttp.WSMsgType.CLOSE,
        aiohttp.WSMsgType.CLOSING,
        aiohttp.WSMsgType.CLOSED,
        aiohttp.WSMsgType.ERROR,
    ):
        raise ConnectionError("Home Assistant closed the websocket")
    if msg.type != aiohttp.WSMsgType.TEXT:
        raise ValueError(f"Home Assistant sent a {msg.type.name} message, not JSON text")
    return msg.json()


class HassNames:
    """Keeps the names of one Home Assistant fresh, in the background."""

    def __init__(self, url: str, token: str, source: str) -> None:
        self.url = websocket_url(url)
        self._token = token
        self.source = source  # "supervisor" or "url"
        self.names: tuple[str, ...] = ()
        self.home = Home()  # the same names, as Assist matches commands against them
        self.refreshed: float | None = None  # time.time() of the last complete read
        self.error: str | None = None
        self.connected = False
        self._changed = False  # a registry event arrived during a read
        self._task: asyncio.Task[None] | None = None

    def status(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "names": len(self.names),
            "connected": self.connected,
            "stale": not self.connected,
            "last_refresh": self.refreshed,
            "last_error": self.error,
        }

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        """Follow Home Assistant until stopped: every failure, of whatever kind, is recorded for
        ``/health`` and retried with backoff; only cancellation ends the reader."""
        failures = 0
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    await self._follow(session)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # the names must outlive any fault
                    self.error = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
                    if failures == 0:
                        _LOGGER.warning(
                            "Home Assistant names from %s unavailable (%s); using the %d read "
                            "before, retrying in the background",
                            self.url,
                            self.error,
                            len(self.names),
                            exc_info=not isinstance(err, EXPECTED),
                        )
                    failures += 1
                finally:
                    self.connected = False
                await asyncio.sleep(BACKOFF[min(failures, len(BACKOFF) - 1)])

    async def _follow(self, session: aiohttp.ClientSession) -> None:
        """Connect, read the names, and read them again on every registry change."""
        async with session.ws_connect(self.url, heartbeat=30, max_msg_size=0) as ws:
            await asyncio.wait_for(_receive(ws), TIMEOUT)  # auth_required
            await ws.send_json({"type": "auth", "access_token": self._token})
            answer = await asyncio.wait_for(_receive(ws), TIMEOUT)
            if answer.get("type") != "auth_ok":
                raise PermissionError(answer.get("message") or "token refused")  # an OSError
            self.connected = True
            ids = iter(range(1, 1 << 30))
            for event in REGISTRY_EVENTS:
                await ws.send_json(
                    {"id": next(ids), "type": "subscribe_events", "event_type": event}
                )
            while True:
                self._changed = True
                while self._changed:  # a change seen while reading: read again
                    self._changed = False
                    await self._refresh(ws, ids)
                # Wait for a registry change (or a closed socket), then read everything again.
                while True:
                    msg = await ws.receive()
                    if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        raise ConnectionError("Home Assistant closed the websocket")
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    if msg.json().get("type") == "event":
                        await asyncio.sleep(0.5)  # a burst of changes: read once after it
                        break

    async def _command(
        self, ws: aiohttp.ClientWebSocketResponse, ids: Any, message: dict[str, Any]
    ) -> dict[str, Any]:
        """One websocket command's result message (events meanwhile mark the read stale)."""
        mid = next(ids)
        await ws.send_json({"id": mid, **message})
        while True:
            answer = await asyncio.wait_for(_receive(ws), TIMEOUT)
            if answer.get("id") == mid and answer.get("type") == "result":
                return dict(answer)
            if answer.get("type") == "event":
                self._changed = True  # what was read already may be out of date

    async def _refresh(self, ws: aiohttp.ClientWebSocketResponse, ids: Any) -> None:
        results: dict[str, Any] = {}
        commands = {
            "exposed": "homeassistant/expose_entity/list",
            "entities": "config/entity_registry/list",
            "states": "get_states",
            "areas": "config/area_registry/list",
            "floors": "config/floor_registry/list",
            "devices": "config/device_registry/list",
            "sentences": "conversation/sentences/list",  # sentence triggers' sentences
        }
        for key, command in commands.items():
            answer = await self._command(ws, ids, {"type": command})
            if not answer.get("success"):
                if key in OPTIONAL:  # an older Home Assistant, or one without conversation
                    continue
                raise ConnectionError(f"{command}: {answer.get('error')}")
            results[key] = answer["result"]
        exposed = results["exposed"].get("exposed_entities", {})
        # The registry's list leaves aliases out; the exposed entities' full entries have them.
        spoken = sorted(e for e, where in exposed.items() if where.get("conversation"))
        answer = await self._command(
            ws, ids, {"type": "config/entity_registry/get_entries", "entity_ids": spoken}
        )
        full = answer.get("result") if answer.get("success") else None
        if isinstance(full, dict):
            results["entities"] = [
                {**entry, **(full.get(entry.get("entity_id")) or {})}
                for entry in results["entities"]
            ]
        self.home = read_home(
            exposed,
            results["entities"],
            results["states"],
            results["areas"],
            results["floors"],
            devices=results.get("devices") or [],
            sentences=(results.get("sentences") or {}).get("trigger_sentences") or [],
        )
        self.names = rank_names(self.home)
        self.refreshed = time.time()
        self.error = None
        _LOGGER.info("Home Assistant names: %d read from %s", len(self.names), self.url)
