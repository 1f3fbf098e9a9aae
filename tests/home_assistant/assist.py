"""Home Assistant set up for Assist with the entities of tests/data/assist, reusable by
bench/assist.py and by tests: a config dir with the ``bench_devices`` integration, floors, areas,
aliases and exposure through the registry websocket APIs, Wyoming servers added through the
config flow, one Assist pipeline each, pipeline runs from stt to intent, entities put in a known
state and read back, and the pure check of a manifest row against what Home Assistant did.

All of it runs inside a network namespace that has only loopback (``scenario.NAMESPACE``), as
tests/home_assistant/scenario.py does: Home Assistant's zeroconf must not reach a real network.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from tests.data.assist.build import AREAS, ENTITIES, FLOORS, TIMERS  # noqa: E402
from tests.harness import eventually_async  # noqa: E402
from tests.home_assistant.scenario import CHUNK, HA, Hass  # noqa: E402

CONFIG = """\
# Home Assistant for bench/assist.py (written by tests/home_assistant/assist.py)
homeassistant:
  name: wyoming-whisper-assist-bench
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: US
  language: en
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: 18123
logger:
  default: warning
api:
websocket_api:
auth:
onboarding:
config:
network:
stt:
intent:
conversation:
assist_pipeline:
wyoming:
"""
EXPECT_RESPONSE = ("response", "speech")  # keys of ``expect`` about the intent's answer


def write_config(config: Path) -> Path:
    """A Home Assistant config dir: CONFIG plus ``bench_devices`` with every entity."""
    config.mkdir(parents=True, exist_ok=True)
    entities = {eid: {"name": name, **opts} for eid, (name, _, _, opts) in ENTITIES.items()}
    devices = json.dumps({"entities": entities})  # YAML reads JSON
    (config / "configuration.yaml").write_text(CONFIG + f"bench_devices: {devices}\n")
    src = HERE / "custom_components" / "bench_devices"
    shutil.copytree(src, config / "custom_components" / "bench_devices", dirs_exist_ok=True)
    return config


async def setup_names(hass: Hass) -> str:
    """Floors, areas (with aliases), each entity's area and aliases, all exposed to Assist;
    returns the id of the device that supports timers (pass it to pipeline runs)."""
    floors = {}
    for floor in FLOORS:
        floors[floor] = (await hass.command(type="config/floor_registry/create", name=floor))[
            "floor_id"
        ]
    areas = {}
    existing = {a["name"].lower(): a["area_id"] for a in
                await hass.command(type="config/area_registry/list")}  # fmt: skip
    for area, (floor, aliases) in AREAS.items():
        fields = {"aliases": list(aliases), "floor_id": floors[floor]}
        if area.lower() in existing:  # onboarding made Kitchen, Living Room, Bedroom
            made = await hass.command(
                type="config/area_registry/update", area_id=existing[area.lower()], **fields
            )
        else:
            made = await hass.command(type="config/area_registry/create", name=area, **fields)
        areas[area] = made["area_id"]

    async def registered() -> bool:  # the platforms register their entities
        listed = await hass.command(type="config/entity_registry/list")
        known = {e["entity_id"] for e in listed}
        assert set(ENTITIES) | {TIMERS} <= known, f"entities missing: {set(ENTITIES) - known}"
        return True

    await eventually_async(registered, 60, interval=0.5, what="bench_devices entities")
    for entity_id, (_, area, aliases, _) in ENTITIES.items():
        await hass.command(
            type="config/entity_registry/update",
            entity_id=entity_id,
            area_id=areas[area] if area else None,
            aliases=list(aliases),
        )
    await hass.command(
        type="homeassistant/expose_entity",
        assistants=["conversation"],
        entity_ids=list(ENTITIES),
        should_expose=True,
    )
    await hass.command(
        type="homeassistant/expose_entity",
        assistants=["conversation"],
        entity_ids=[TIMERS],
        should_expose=False,
    )
    devices = await hass.command(type="config/device_registry/list")
    return next(d["id"] for d in devices if d["name"] == "Bench satellite")


async def token(hass: Hass, name: str = "assist-bench") -> str:
    """A long-lived access token, as a Wyoming server's ``--hass-token`` needs."""
    return str(
        await hass.command(type="auth/long_lived_access_token", client_name=name, lifespan=30)
    )


async def add_wyoming(hass: Hass, port: int) -> tuple[str, str]:
    """The config flow by host and port; returns (config entry id, its STT entity id)."""
    _, start = await hass.rest(
        "POST", "/api/config/config_entries/flow", json={"handler": "wyoming"}
    )
    done = await hass.flow(start["flow_id"], {"host": "127.0.0.1", "port": port})
    if done.get("type") != "create_entry":
        raise RuntimeError(f"wyoming flow for port {port}: {done}")
    entry = done["result"]["entry_id"]

    async def stt_entity() -> str | None:
        listed = await hass.command(type="config/entity_registry/list")
        stt = [e["entity_id"] for e in listed if e.get("config_entry_id") == entry
               and e["entity_id"].startswith("stt.")]  # fmt: skip
        return stt[0] if stt else None

    what = f"an STT entity for the Wyoming entry on port {port}"
    return entry, await eventually_async(stt_entity, 30, interval=0.5, what=what)


def _intent(events: list[dict[str, Any]]) -> dict[str, Any]:
    end = next((e for e in events if e["type"] == "intent-end"), None)
    if end is None:
        return {}
    response = end["data"]["intent_output"]["response"]
    data = response.get("data") or {}
    return {
        "response_type": response.get("response_type"),
        "speech": ((response.get("speech") or {}).get("plain") or {}).get("speech", ""),
        "success": [t.get("id") for t in data.get("success", [])],
        "failed": [t.get("id") for t in data.get("failed", [])],
        "code": data.get("code"),
    }


async def run_intent(
    hass: Hass, pipeline: str, *, pcm: bytes | None = None, text: str | None = None,
    device_id: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """assist_pipeline/run to the intent stage: from stt with ``pcm`` (16 kHz 16-bit mono, sent
    at once in 30 ms binary messages, then the empty one that ends it) or from intent with
    ``text``. Returns the transcript, the intent's answer and the seconds from the end of the
    audio (or the text sent) to intent-end."""
    assert hass.ws is not None
    start = "stt" if pcm is not None else "intent"
    message: dict[str, Any] = {"type": "assist_pipeline/run", "start_stage": start,
                               "end_stage": "intent", "pipeline": pipeline}  # fmt: skip
    message["input"] = {"sample_rate": 16000} if pcm is not None else {"text": text}
    if device_id is not None:
        message["device_id"] = device_id
    sent = time.monotonic()
    mid = await hass.send(**message)
    events: list[dict[str, Any]] = []
    audio_end: float | None = sent
    sender: asyncio.Task[float] | None = None

    async def stream(prefix: bytes) -> float:
        assert hass.ws is not None and pcm is not None
        for offset in range(0, len(pcm), CHUNK):
            await hass.ws.send_bytes(prefix + pcm[offset : offset + CHUNK])
        await hass.ws.send_bytes(prefix)
        return time.monotonic()

    while True:
        reply = await asyncio.wait_for(hass.ws.receive_json(), 120)
        if reply.get("id") != mid:
            continue
        if reply["type"] == "result":
            if not reply["success"]:
                return {"error": reply.get("error")}
            continue
        event = reply["event"]
        event["at"] = time.monotonic()
        events.append(event)
        if event["type"] == "stt-start":
            handler = events[0]["data"]["runner_data"]["stt_binary_handler_id"]
            sender = asyncio.create_task(stream(bytes([handler])))
        elif event["type"] in ("run-end", "error"):
            break
    if sender is not None:
        audio_end = await sender
    stt_end = next((e for e in events if e["type"] == "stt-end"), None)
    intent_end = next((e for e in events if e["type"] == "intent-end"), None)
    return {
        "transcript": stt_end["data"]["stt_output"]["text"] if stt_end else text,
        "intent": _intent(events),
        "error": next((e["data"] for e in events if e["type"] == "error"), None),
        "seconds": round(intent_end["at"] - audio_end, 3) if intent_end and audio_end else None,
        # the transcript alone (what the STT server costs; the intent adds Home Assistant's work)
        "stt_seconds": round(stt_end["at"] - audio_end, 3) if stt_end and audio_end else None,
    }


def parse(spec: str) -> list[tuple[str, str, str]]:
    """``key=value;key~value`` -> [(key, op, value)]; ``say=...`` keeps its text whole."""
    if spec.startswith("say="):
        return [("say", "=", spec[4:])]
    out = []
    for part in filter(None, spec.split(";")):
        op = "~" if "~" in part and ("=" not in part or part.index("~") < part.index("=")) else "="
        key, value = part.split(op, 1)
        out.append((key.strip(), op, value.strip()))
    return out


def _value(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def before_values(spec: str) -> dict[str, Any]:
    """What ``bench_devices.set`` gets for a row's ``before`` (empty for ``say=``)."""
    return {k: _value(v) for k, op, v in parse(spec) if k != "say"}


def observed(state: dict[str, Any]) -> dict[str, Any]:
    """A state object as the checks compare it: ``state``, the attributes, brightness_pct."""
    attrs = dict(state.get("attributes", {}))
    out = {"state": state.get("state"), **attrs}
    if attrs.get("brightness") is not None:
        out["brightness_pct"] = round(attrs["brightness"] * 100 / 255)
    return out


def check(expect: str, targets: dict[str, dict[str, Any]], intent: dict[str, Any]) -> list[str]:
    """What did not happen of a row's ``expect``: every target's state/attributes (as
    ``observed`` returns them) and the intent's answer. Empty when the command was carried out."""
    missed = []
    answered = intent.get("success") or []
    asked = any(k in EXPECT_RESPONSE for k, _, _ in parse(expect))
    if asked and answered and not set(targets) & set(answered):
        missed.append(f"the answer is about {answered}, not {sorted(targets)}")
    for key, op, want in parse(expect):
        if key in EXPECT_RESPONSE:
            got = intent.get("response_type") if key == "response" else intent.get("speech", "")
            ok = (str(got) == want) if op == "=" else want.lower() in str(got).lower()
            if not ok:
                missed.append(f"{key}{op}{want} (got {got!r})")
            continue
        for entity_id, values in targets.items():
            got = values.get(key)
            if isinstance(got, str) and isinstance(_value(want), str):
                ok = got.lower() == want.lower()
            elif isinstance(got, (int, float)) and not isinstance(got, bool):
                ok = abs(float(got) - float(_value(want))) <= (
                    1 if key == "brightness_pct" else 0.01
                )
            else:
                ok = str(got) == want
            if not ok:
                missed.append(f"{entity_id} {key}={want} (got {got!r})")
    return missed


async def states(hass: Hass, entity_ids: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for entity_id in entity_ids:
        _, state = await hass.rest("GET", f"/api/states/{entity_id}")
        out[entity_id] = observed(state if isinstance(state, dict) else {})
    return out


async def prepare(hass: Hass, row: dict[str, str], pipeline: str, device_id: str) -> None:
    """Put a row's targets in its ``before`` state: timers cleared, values set, or a command
    said as text first (``say=``, on the timer device)."""
    await hass.rest("POST", "/api/services/bench_devices/reset_timers", json={})
    values = before_values(row["before"])
    targets = [t for t in row["target"].split(",") if t and t != TIMERS]
    if values and targets:
        await hass.rest("POST", "/api/services/bench_devices/set",
                        json={"entity_id": targets, "values": values})  # fmt: skip
    said = dict((k, v) for k, _, v in parse(row["before"])).get("say")
    if said:
        await run_intent(hass, pipeline, text=said, device_id=device_id)


HA_URL = HA
