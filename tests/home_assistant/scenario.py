"""Home Assistant and wyoming-whisper together, as a user sets them up; run by
tests/test_home_assistant.py inside a network namespace that has only loopback.

Starts Home Assistant (its own venv, ``hass --skip-pip``) and three wyoming-whisper servers on
loopback: A is added by host and port, B is found by Home Assistant's zeroconf, C is offered as
the Supervisor offers an add-on (source ``hassio``). Then, through Home Assistant's own REST and
websocket APIs only: onboarding, the three config flows, the STT entity, ``POST /api/stt``, an
Assist pipeline run with the audio sent at once, and one paced in real time. Writes what it saw
as JSON to ``argv[2]``; the test module checks it.

    python scenario.py HA_VENV OUT.json
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from tests.data.names.build import AREAS, ENTITIES  # noqa: E402
from tests.data.names.build import load as load_commands  # noqa: E402
from tests.harness import eventually, eventually_async  # noqa: E402
from tests.wyoming_client import load_pcm16, transcribe  # noqa: E402

HA = "http://127.0.0.1:18123"
CLIENT_ID = HA + "/"
CLIP = REPO / "tests" / "data" / "speech_recognition" / "english.wav"  # "one, two, three"
SERVERS = {"A": (10300, 10301), "B": (10310, 10311), "C": (10320, 10321)}  # wyoming, http
NAMES_SERVER = (10330, 10331)  # D: reads Assist's names from Home Assistant (--hass-url)
AREA_ALIAS, FLOOR = "Den", "Mezzanine"  # the last area's alias; the floor of every area
CHUNK = 960  # bytes: 30 ms of 16 kHz 16-bit mono, as a satellite streams


def start_server(name: str, logs: Path, *extra: str) -> subprocess.Popen:
    wyoming, http = SERVERS.get(name, NAMES_SERVER)
    args = [sys.executable, "-m", "wyoming_whisper", "-m", "tiny.en", "--host", "127.0.0.1"]
    args += ["--port", str(http), "--wyoming-port", str(wyoming), *extra]
    if name in ("A", "D"):
        args += ["--preload", "--no-zeroconf"]
    elif name == "B":
        args += ["--zeroconf-name", "whisper-b"]
    else:
        args += ["--no-zeroconf"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = open(logs / f"server-{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_http(url: str, timeout: float, proc: subprocess.Popen) -> None:
    def answers() -> bool:
        if proc.poll() is not None:  # not retried: a dead process never answers
            raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}")
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200

    try:
        eventually(answers, timeout, interval=0.2, what=url)
    except OSError as err:  # refused to the end: say which URL
        raise TimeoutError(url) from err


def health(name: str) -> dict[str, Any]:
    port = SERVERS.get(name, NAMES_SERVER)[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
        return dict(json.loads(r.read()))


def outcomes(port: int) -> dict[str, float]:
    """whisper_assist_commands_total by outcome, from the server's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    found = re.findall(r'^whisper_assist_commands_total\{outcome="(\w+)"\} (\S+)$', text, re.M)
    return {outcome: float(value) for outcome, value in found}


async def until(predicate: Any, timeout: float) -> bool:
    """Whether ``predicate`` came true within ``timeout``; the scenario records what follows
    either way (the test module checks it), so running out of time is not an error here."""
    try:
        await eventually_async(predicate, timeout, interval=0.25)
    except TimeoutError:
        return False
    return True


class Hass:
    """Home Assistant's REST and websocket APIs, as its frontend uses them."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.headers: dict[str, str] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.token = ""
        self.next_id = 1

    async def rest(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        headers = {**self.headers, **kw.pop("headers", {})}
        async with self.session.request(method, HA + path, headers=headers, **kw) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text

    async def onboard(self) -> None:
        user = {"client_id": CLIENT_ID, "name": "Owner", "username": "owner"}
        user |= {"password": "owner-pass-123", "language": "en"}
        _, body = await self.rest("POST", "/api/onboarding/users", json=user)
        grant = {"grant_type": "authorization_code", "code": body["auth_code"]}
        _, token = await self.rest("POST", "/auth/token", data={**grant, "client_id": CLIENT_ID})
        self.headers = {"Authorization": f"Bearer {token['access_token']}"}
        # (core_config is left out: it sets up weather and radio integrations this venv lacks)
        await self.rest("POST", "/api/onboarding/analytics")
        done = {"client_id": CLIENT_ID, "redirect_uri": HA + "/?auth_callback=1"}
        await self.rest("POST", "/api/onboarding/integration", json=done)
        self.token = token["access_token"]
        await self.connect()

    async def connect(self) -> None:
        """A new websocket (Home Assistant drops one left unread for minutes: no pongs)."""
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        self.ws = await self.session.ws_connect(HA + "/api/websocket", max_msg_size=0)
        await self.ws.receive_json()
        await self.ws.send_json({"type": "auth", "access_token": self.token})
        assert (await self.ws.receive_json())["type"] == "auth_ok"

    async def send(self, **message: Any) -> int:
        assert self.ws is not None
        mid, self.next_id = self.next_id, self.next_id + 1
        await self.ws.send_json({"id": mid, **message})
        return mid

    async def command(self, **message: Any) -> Any:
        assert self.ws is not None
        mid = await self.send(**message)
        while True:
            answer = await asyncio.wait_for(self.ws.receive_json(), 60)
            if answer.get("id") == mid and answer["type"] == "result":
                assert answer["success"], answer
                return answer["result"]

    async def expose_helpers(self, names: Sequence[str]) -> None:
        """input_boolean helpers with these names, exposed to Assist (the conversation agent)."""
        created = [await self.command(type="input_boolean/create", name=n) for n in names]
        await asyncio.sleep(0.5)  # the helpers' entities are registered
        await self.command(
            type="homeassistant/expose_entity",
            assistants=["conversation"],
            entity_ids=[f"input_boolean.{c['id']}" for c in created],
            should_expose=True,
        )

    async def pipeline(self, name: str, stt_engine: str | None) -> str:
        """A new English Assist pipeline: this STT entity (or none: typed text), Home
        Assistant's own conversation agent."""
        created = await self.command(
            type="assist_pipeline/pipeline/create",
            name=name,
            language="en",
            conversation_engine="conversation.home_assistant",
            conversation_language="en",
            stt_engine=stt_engine,
            stt_language="en",
            tts_engine=None,
            tts_language=None,
            tts_voice=None,
            wake_word_entity=None,
            wake_word_id=None,
        )
        return str(created["id"])

    async def flow(self, flow_id: str, data: dict[str, Any]) -> dict[str, Any]:
        _, body = await self.rest("POST", f"/api/config/config_entries/flow/{flow_id}", json=data)
        return dict(body)

    async def discovered(self, source: str, timeout: float = 30) -> dict[str, Any] | None:
        async def found() -> dict[str, Any] | None:
            flows = await self.command(type="config_entries/flow/progress")
            return next(
                (
                    dict(f)
                    for f in flows
                    if f["handler"] == "wyoming" and f["context"]["source"] == source
                ),
                None,
            )

        try:
            return await eventually_async(found, timeout, interval=0.5, what=f"a {source} flow")
        except TimeoutError:
            return None  # the caller records it

    async def run_pipeline(
        self, pipeline: str, pcm: bytes, *, paced: bool, end_stage: str = "stt"
    ) -> dict[str, Any]:
        """assist_pipeline/run from stt (to stt, or on to the intent), audio as binary messages,
        as a satellite does."""
        assert self.ws is not None
        mid = await self.send(
            type="assist_pipeline/run",
            start_stage="stt",
            end_stage=end_stage,
            pipeline=pipeline,
            input={"sample_rate": 16000},
        )
        events: list[dict[str, Any]] = []
        handler = None
        sender: asyncio.Task[float] | None = None

        async def stream(prefix: bytes) -> float:
            assert self.ws is not None
            started = time.monotonic()
            for i, offset in enumerate(range(0, len(pcm), CHUNK)):
                if paced:
                    await asyncio.sleep(max(0.0, started + i * 0.03 - time.monotonic()))
                await self.ws.send_bytes(prefix + pcm[offset : offset + CHUNK])
            await self.ws.send_bytes(prefix)  # the end of the audio
            return time.monotonic()

        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), 120)
            if message.get("id") != mid:
                continue
            if message["type"] == "result":
                assert message["success"], message
                continue
            event = message["event"]
            event["at"] = time.monotonic()
            events.append(event)
            if event["type"] == "run-start":
                handler = event["data"]["runner_data"]["stt_binary_handler_id"]
            elif event["type"] == "stt-start":
                sender = asyncio.create_task(stream(bytes([handler or 0])))
            elif event["type"] in ("run-end", "error"):
                break
        ended = await sender if sender else None
        end = next((e for e in events if e["type"] == "stt-end"), None)
        intent = next((e["data"] for e in events if e["type"] == "intent-end"), None)
        return {
            "events": [e["type"] for e in events],
            "intent": intent["intent_output"]["response"] if intent else None,
            "text": end["data"]["stt_output"]["text"] if end else None,
            "error": next((e["data"] for e in events if e["type"] == "error"), None),
            "answer_after_audio_end": (end["at"] - ended) if end and ended else None,
        }


async def names(hass: Hass, result: dict[str, Any], life: Life) -> None:
    """Server D reads the names of exposed helpers, an area and a floor; survives a stopped
    Home Assistant (stale names, transcriptions go on) and refreshes when it is back."""
    token = await hass.command(
        type="auth/long_lived_access_token", client_name="wyoming-whisper", lifespan=30
    )
    floor = await hass.command(type="config/floor_registry/create", name=FLOOR)
    for area in AREAS:
        aliases = [AREA_ALIAS] if area == AREAS[-1] else []
        await hass.command(
            type="config/area_registry/create",
            name=area,
            aliases=aliases,
            floor_id=floor["floor_id"],
        )
    await hass.expose_helpers(ENTITIES)
    server = life.start_names_server(token)
    wait_http(f"http://127.0.0.1:{NAMES_SERVER[1]}/health", 120, server)

    def read() -> dict[str, Any]:
        return dict(health("D")["hass_names"] or {})

    await until(lambda: read().get("names", 0) >= len(ENTITIES) + len(AREAS) + 2, 30)
    result["names_read"] = read()
    # (before the long run of transcriptions below, while the websocket is fresh)
    result["misheard"] = await carry_out(hass)
    # Every spoken command, by the server without names (A) and the one with Home Assistant's (D).
    heard = []
    for row in load_commands():
        audio = load_pcm16(REPO / "tests" / "data" / "names" / row["relpath"])
        plain = await transcribe("127.0.0.1", SERVERS["A"][0], audio)
        named = await transcribe("127.0.0.1", NAMES_SERVER[0], audio)
        heard.append({**row, "without": plain.data.get("text"), "with": named.data.get("text")})
    result["commands"] = heard
    await hass.connect()  # the websocket sat unread while the servers transcribed

    # A registry change (a new exposed helper) is read again without a restart.
    count = read()["names"]
    await hass.expose_helpers(["Gorseway lamp"])
    await until(lambda: read()["names"] > count, 30)
    result["names_after_change"] = {"before": count, "after": read()["names"]}
    pcm = load_pcm16(CLIP)
    started = time.monotonic()
    got = await transcribe("127.0.0.1", NAMES_SERVER[0], pcm)
    result["names_transcript"] = got.data.get("text")
    result["up_transcribe_seconds"] = round(time.monotonic() - started, 3)

    life.stop_hass()
    await until(lambda: read().get("stale") is True, 30)
    result["names_while_down"] = read()
    started = time.monotonic()
    got = await transcribe("127.0.0.1", NAMES_SERVER[0], pcm)
    result["down_transcript"] = got.data.get("text")
    result["down_transcribe_seconds"] = round(time.monotonic() - started, 3)

    life.start_hass()
    refreshed = result["names_read"].get("last_refresh") or 0
    await until(lambda: (read().get("last_refresh") or 0) > refreshed and read()["connected"], 90)
    result["names_after_restart"] = read()


MISHEARD = ("14.flac", "18.flac", "19.flac")  # tiny.en heard "Oberlyn cattle", "Masselhoff"


async def carry_out(hass: Hass) -> dict[str, Any]:
    """Commands tiny.en mishears, through an Assist pipeline (stt -> intent) on server D, which
    reads the names: the command is carried out (the helper's state read back)."""

    def stt(engines: dict[str, Any]) -> set[str]:
        return {p["engine_id"] for p in engines["providers"] if p["engine_id"].startswith("stt.")}

    def sentences_loaded() -> bool:
        """Server D loads Home Assistant's English sentences when it starts (seconds; until
        then its transcripts go out as heard)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{NAMES_SERVER[1]}/health", timeout=5) as r:
            health = json.loads(r.read())
        return bool(health["assist_commands"]["sentences"].get("en") == "loaded")

    await eventually_async(
        lambda: asyncio.to_thread(sentences_loaded), 120, 0.25, "server D's sentences"
    )
    before = stt(await hass.command(type="stt/engine/list"))
    _, entry = await hass.rest(
        "POST", "/api/config/config_entries/flow", json={"handler": "wyoming"}
    )
    await hass.flow(entry["flow_id"], {"host": "127.0.0.1", "port": NAMES_SERVER[0]})
    await asyncio.sleep(1.0)  # the entry's platform sets up its entity
    entity = sorted(stt(await hass.command(type="stt/engine/list")) - before)
    pipeline = await hass.pipeline("Whisper with names", entity[-1])
    _, states = await hass.rest("GET", "/api/states")
    helpers = {s["attributes"].get("friendly_name"): s["entity_id"] for s in states}
    runs = []
    rows = {row["relpath"]: row for row in load_commands()}
    for relpath in MISHEARD:
        row = rows[relpath]
        target = helpers[row["name"]]
        # The opposite state first, so that only the command can bring the expected one.
        before = "turn_on" if row["text"].startswith("Switch off") else "turn_off"
        await hass.rest("POST", f"/api/services/input_boolean/{before}", json={"entity_id": target})
        pcm = load_pcm16(REPO / "tests" / "data" / "names" / relpath) + b"\x00\x00" * 16000
        run = await hass.run_pipeline(pipeline, pcm, paced=False, end_stage="intent")
        _, state = await hass.rest("GET", f"/api/states/{target}")
        runs.append({**run, "said": row["text"], "entity": target, "state": state["state"]})
    commands = outcomes(NAMES_SERVER[1])
    return {"stt_entity": entity[-1], "runs": runs, "assist_commands": commands}


async def scenario(result: dict[str, Any], life: Life) -> None:
    command = load_pcm16(CLIP)
    # A new connection per REST call: Home Assistant closes an idle keep-alive one (75 s), and a
    # reused closed one fails the next POST.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        hass = Hass(session)
        await hass.onboard()
        _, onboarding = await hass.rest("GET", "/api/onboarding")
        result["onboarding"] = onboarding

        # A: the config flow by host and port, as a user types them in.
        _, start = await hass.rest(
            "POST", "/api/config/config_entries/flow", json={"handler": "wyoming"}
        )
        result["user_flow"] = await hass.flow(
            start["flow_id"], {"host": "127.0.0.1", "port": 10300}
        )

        await asyncio.sleep(1.0)  # the entry's platform sets up its entity
        engines = await hass.command(type="stt/engine/list")
        result["stt_engines"] = engines["providers"]
        entity = next(
            (p["engine_id"] for p in engines["providers"] if p["engine_id"].startswith("stt.")),
            None,
        )
        result["entity"] = entity
        if entity is None:
            return
        _, result["stt_info"] = await hass.rest("GET", f"/api/stt/{entity}")
        content = "format=wav; codec=pcm; sample_rate=16000; bit_rate=16; channel=1; language=en"
        _, result["stt_post"] = await hass.rest(
            "POST", f"/api/stt/{entity}", headers={"X-Speech-Content": content}, data=command
        )

        pipeline = await hass.pipeline("Whisper", entity)
        result["pipeline_burst"] = await hass.run_pipeline(pipeline, command, paced=False)
        before = health("A")["streaming"]
        silence = b"\x00\x00" * 16000  # a second of silence after the command, as a room gives
        result["pipeline_paced"] = await hass.run_pipeline(pipeline, command + silence, paced=True)
        after = health("A")["streaming"]
        result["early"] = {k: after[k] - before[k] for k in ("early_decodes", "early_hits")}
        result["names_on_a"] = health("A")["hass_names"]  # not configured: none
        # B: found by Home Assistant's zeroconf browser, confirmed.
        flow = await hass.discovered("zeroconf")
        result["zeroconf_flow"] = flow
        if flow is not None:
            result["zeroconf_entry"] = await hass.flow(flow["flow_id"], {})

        # C: the add-on's discovery payload, as the Supervisor hands it over (config.uri).
        _, offered = await hass.rest(
            "POST",
            "/api/services/wyoming_hassio_test/discover?return_response",
            json={
                "uri": "tcp://127.0.0.1:10320",
                "name": "Whisper add-on",
                "slug": "wyoming_whisper",
            },
        )
        result["hassio_offer"] = (
            offered.get("service_response") if isinstance(offered, dict) else offered
        )
        flow = await hass.discovered("hassio", timeout=5)
        if flow is not None:
            result["hassio_entry"] = await hass.flow(flow["flow_id"], {})

        result["entries"] = await hass.command(type="config_entries/get", domain="wyoming")
        engines = await hass.command(type="stt/engine/list")
        result["stt_engines_after"] = engines["providers"]
        await names(hass, result, life)
        if hass.ws is not None and not hass.ws.closed:
            await hass.ws.close()


class Life:
    """The processes of one scenario: Home Assistant (stopped and started again) and servers."""

    def __init__(self, ha_venv: Path, config: Path, logs: Path) -> None:
        self.ha_venv, self.config, self.logs = ha_venv, config, logs
        self.procs: list[subprocess.Popen] = []
        self.hass: subprocess.Popen | None = None
        self.starts = 0

    def start_hass(self) -> None:
        self.starts += 1
        log = open(self.logs / f"home-assistant-{self.starts}.log", "w")  # noqa: SIM115
        self.hass = subprocess.Popen(
            [str(self.ha_venv / "bin" / "hass"), "--skip-pip", "-c", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(self.hass)
        wait_http(HA + "/manifest.json", 180, self.hass)

    def stop_hass(self) -> None:
        assert self.hass is not None
        self.hass.terminate()
        self.hass.wait(60)

    def start_names_server(self, token: str) -> subprocess.Popen:
        env_token = ("--hass-url", HA, "--hass-token", token)
        proc = start_server("D", self.logs, *env_token)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


NAMESPACE = "ip link set lo up; ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo"


def run_isolated(ha_venv: str, out: Path, **kw: Any) -> subprocess.CompletedProcess:
    """This scenario in a new network namespace that has only loopback (multicast routed to it),
    so nothing browses or advertises beyond this machine."""
    command = f"{NAMESPACE}; exec {sys.executable} {Path(__file__)} {ha_venv} {out}"
    return subprocess.run(["unshare", "-n", "bash", "-c", command], timeout=600, **kw)


def main() -> int:
    ha_venv, out = Path(sys.argv[1]), Path(sys.argv[2])
    logs = out.parent
    config = Path(tempfile.mkdtemp(prefix="ha-config-"))
    shutil.copy(HERE / "configuration.yaml", config)
    shutil.copytree(HERE / "custom_components", config / "custom_components")
    result: dict[str, Any] = {}
    life = Life(ha_venv, config, logs)
    try:
        started = time.monotonic()
        servers = [start_server(name, logs) for name in SERVERS]
        life.procs += servers
        life.start_hass()
        for name, proc in zip(SERVERS, servers, strict=True):
            wait_http(f"http://127.0.0.1:{SERVERS[name][1]}/health", 120, proc)
        result["startup_seconds"] = round(time.monotonic() - started, 1)
        asyncio.run(scenario(result, life))
    except Exception as err:  # reported to the test, which prints the logs
        where = "".join(traceback.format_tb(err.__traceback__)[-3:])
        result["failure"] = f"{type(err).__name__}: {err}\n{where}"
    finally:
        life.stop()
        shutil.rmtree(config, ignore_errors=True)
        out.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
