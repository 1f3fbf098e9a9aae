"""Safe defaults against a hostile client (issue 24, cases 7 to 10): the doors' checks on the server
in process (tests/inprocess.py), what needs a real model or a real load on a real server.

7. a web page of another site cannot unload models, open the WebSockets or rebind a name onto the
   server; 8. the Home Assistant names reader outlives a socket closed mid-exchange; 9. a
   ``--language`` the models cannot serve is refused at start, ``auto`` detects; 10. fault logs
   are rate-limited per connection, transcripts stay out of the INFO log, the API key can come
   from a file, and /health shows load errors without the server's paths.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from wyoming_whisper import hass_names
from wyoming_whisper.hass_names import HassNames
from wyoming_whisper.http.app import INGRESS_PROXY, BrowserGuard
from wyoming_whisper.models.manager import public_reason

from .harness import REPO, ServerProcess, clip, eventually, eventually_async
from .hostile import Watch, still_serves
from .http_helpers import SHORT, WS_PATH, metric, metrics, post_audio
from .inprocess import InProcess, in_thread
from .wyoming_client import load_pcm16, transcribe

FOREIGN = "http://evil.example"
REALTIME = "/v1/realtime?intent=transcription"
UNLOAD = "/v1/model/unload"


def call(
    url: str, method: str = "POST", headers: dict[str, str] | None = None, data: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of one request, errors included."""
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def states(srv: ServerProcess | InProcess) -> list[str]:
    status, health = call(srv.url + "/health", "GET")
    assert status == 200, health
    return [m["state"] for m in health["models"]]


async def handshake(url: str, headers: dict[str, str]) -> int:
    """101 when the WebSocket opened, else the status of the refused handshake."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers):
                return 101
        except aiohttp.WSServerHandshakeError as err:
            return err.status


def refused(status: int, body: dict[str, Any], *words: str) -> None:
    """403 in OpenAI's error shape, naming what to do."""
    assert status == 403, body
    error = body["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "forbidden_origin"
    for word in words:
        assert word in error["message"], error


# --- 7: not open to any web page ---------------------------------------------------------------


def test_foreign_pages_cannot_unload_open_websockets_or_rebind() -> None:
    with in_thread("-m", "tiny.en", "--preload") as srv:
        foreign_pages_refused(srv)


def foreign_pages_refused(srv: InProcess) -> None:
    ws = srv.url.replace("http", "ws", 1)
    started = time.monotonic()
    with Watch(srv) as w:
        # A bodiless cross-origin POST is a CORS "simple request": the browser sends it unasked.
        status, body = call(srv.url + UNLOAD, headers={"Origin": FOREIGN})
        refused(status, body, "--cors-origins")
        # The same with JSON: the origin is still foreign.
        json_headers = {"Origin": FOREIGN, "Content-Type": "application/json"}
        refused(*call(srv.url + UNLOAD, headers=json_headers, data=b"{}"))
        # An upload from a foreign page is refused before a byte of it is read.
        status, body = call(
            srv.url + "/v1/audio/transcriptions",
            headers={"Origin": FOREIGN, "Content-Type": "multipart/form-data; boundary=x"},
            data=b"--x--\r\n",
        )
        refused(status, body)
        for path in (WS_PATH, REALTIME):
            assert asyncio.run(handshake(ws + path, {"Origin": FOREIGN})) == 403
        # DNS rebinding: the page is "same-origin" under a public name pointed at the server.
        rebound = f"evil.example:{srv.port}"
        status, body = call(
            srv.url + UNLOAD,
            headers={**json_headers, "Origin": f"http://{rebound}", "Host": rebound},
            data=b"{}",
        )
        refused(status, body, rebound)
        rebind_ws = {"Origin": f"http://{rebound}", "Host": rebound}
        assert asyncio.run(handshake(ws + WS_PATH, rebind_ws)) == 403
    seconds = time.monotonic() - started
    assert states(srv) == ["loaded"]
    w.check()
    # The server's own page: same origin, by address or local name; unload wants JSON.
    own = {"Origin": srv.url}
    refused(*call(srv.url + UNLOAD, headers=own), "application/json")
    assert (
        call(srv.url + UNLOAD, headers={**own, "Content-Type": "application/json"}, data=b"{}")[0]
        == 200
    )
    assert states(srv) == ["unloaded"]
    local = {"Origin": f"http://whisper.local:{srv.port}", "Host": f"whisper.local:{srv.port}"}
    assert asyncio.run(handshake(ws + REALTIME, local)) == 101
    assert asyncio.run(handshake(ws + WS_PATH, own)) == 101
    # curl, SDKs, Home Assistant: no Origin, nothing changes (tests/test_faults.py unloads so).
    assert call(srv.url + UNLOAD)[0] == 200
    still_serves(srv)
    print("case 7 foreign origin + rebinding:", f"403 in {seconds:.2f} s,", w.summary())


GUARD = BrowserGuard(origins=(), hosts=frozenset({"whisper-box"}))
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "headers", "remote", "allowed"),
    [
        ("POST", {}, "10.0.0.9", True),  # curl, SDKs, Home Assistant: no Origin
        ("GET", {"Origin": FOREIGN, "Host": "1.2.3.4"}, "10.0.0.9", True),  # reads: CORS's job
        ("POST", {"Origin": FOREIGN, "Host": "1.2.3.4"}, "10.0.0.9", False),
        ("GET", {"Origin": FOREIGN, "Upgrade": "websocket", "Host": "h"}, "10.0.0.9", False),
        ("POST", {"Origin": "null", "Host": "h"}, "10.0.0.9", False),  # sandboxed frame, file://
        ("POST", {"Origin": "http://[::1", "Host": "[::1"}, None, False),  # not a URL: no 500
        ("POST", {"Origin": "http://192.168.1.5:10301", "Host": "192.168.1.5:10301"}, None, True),
        ("POST", {"Origin": "http://[::1]:10301", "Host": "[::1]:10301"}, None, True),
        ("POST", {"Origin": "http://nas:10301", "Host": "nas:10301"}, None, True),
        ("POST", {"Origin": "https://box.home.arpa", "Host": "box.home.arpa:443"}, None, True),
        ("POST", {"Origin": "http://whisper-box:80", "Host": "whisper-box"}, None, True),
        ("POST", {"Origin": "http://evil.example:80", "Host": "evil.example"}, None, False),
        ("POST", {"Origin": "http://a.b.example", "Host": "a.b.example"}, None, False),
        # Home Assistant's ingress: HA's own Origin and Host, from the Supervisor's proxy only.
        ("POST", {"Origin": "https://x.ui.nabu.casa", "X-Ingress-Path": "/api/hassio_ingress/t"},
         INGRESS_PROXY, True),
        ("POST", {"Origin": "https://x.ui.nabu.casa", "X-Ingress-Path": "/api/hassio_ingress/t"},
         "127.0.0.1", False),
    ],
)  # fmt: skip
def test_browser_guard_rule(
    method: str, headers: dict[str, str], remote: str | None, allowed: bool
) -> None:
    reason = GUARD.refusal(method, "/v1/audio/transcriptions", headers, remote)
    assert (reason is None) is allowed, reason


def test_browser_guard_unload_wants_a_preflighted_request_and_cors_origins_allows() -> None:
    own = {"Origin": "http://127.0.0.1:10301", "Host": "127.0.0.1:10301"}
    assert GUARD.refusal("POST", UNLOAD, own, None) is not None
    assert GUARD.refusal("POST", UNLOAD, {**own, **JSON}, None) is None
    assert GUARD.refusal("POST", UNLOAD, {**own, "Authorization": "Bearer k"}, None) is None
    ingress = {**own, "X-Ingress-Path": "/api/hassio_ingress/t", **JSON}
    assert GUARD.refusal("POST", UNLOAD, ingress, INGRESS_PROXY) is None
    allowed = BrowserGuard(origins=("http://evil.example",), hosts=frozenset())
    assert allowed.refusal("POST", UNLOAD, {"Origin": FOREIGN + "/", **JSON}, None) is None
    anyone = BrowserGuard(origins=("*",), hosts=frozenset())
    assert anyone.refusal("GET", WS_PATH, {"Origin": FOREIGN, "Upgrade": "websocket"}, None) is None


def test_cors_origins_allows_a_named_page() -> None:
    with in_thread("-m", "tiny.en", "--preload", "--cors-origins", FOREIGN) as srv:
        ws = srv.url.replace("http", "ws", 1)
        headers = {"Origin": FOREIGN, "Content-Type": "application/json"}
        assert call(srv.url + UNLOAD, headers=headers, data=b"{}")[0] == 200
        assert states(srv) == ["unloaded"]
        refused(*call(srv.url + UNLOAD, headers={"Origin": FOREIGN}), "application/json")
        for path in (WS_PATH, REALTIME):
            assert asyncio.run(handshake(ws + path, {"Origin": FOREIGN})) == 101
        refused(*call(srv.url + UNLOAD, headers={**headers, "Origin": "http://other.example"}))


# --- 8: the names reader never dies ------------------------------------------------------------

RESULTS = {
    "homeassistant/expose_entity/list": {"exposed_entities": {"light.p": {"conversation": True}}},
    "config/entity_registry/list": [{"entity_id": "light.p", "name": "Plantuary lamp"}],
    "get_states": [],
    "config/area_registry/list": [{"name": "Snug", "aliases": []}],
    "config/floor_registry/list": [],
}


class FakeHomeAssistant:
    """Home Assistant's websocket API on 127.0.0.1: the first connection is closed during login,
    the second during a refresh (as the Supervisor's proxy does when Core is unreachable), the
    third behaves. ``seen`` is the reader's status as each connection opens."""

    def __init__(self, names: HassNames | None = None) -> None:
        self.connections = 0
        self.seen: list[dict[str, Any]] = []
        self.names = names

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        if self.names is not None:
            self.seen.append(self.names.status())
        await ws.send_json({"type": "auth_required"})
        await ws.receive_json()
        if self.connections == 1:
            await ws.close()
            return ws
        await ws.send_json({"type": "auth_ok"})
        async for msg in ws:
            data = msg.json()
            if self.connections == 2 and data["type"] == "get_states":
                await ws.close()
                return ws
            result = RESULTS.get(data["type"])
            await ws.send_json(
                {"id": data["id"], "type": "result", "success": True, "result": result}
            )
        return ws


async def test_names_reader_survives_closes_during_login_and_refresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hass_names, "BACKOFF", (0.05,))
    fake = FakeHomeAssistant()
    app = web.Application()
    app.router.add_get("/api/websocket", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    names = HassNames(f"http://127.0.0.1:{port}", "token", "url")
    fake.names = names
    started = time.monotonic()
    names.start()
    try:

        def read() -> tuple[str, ...]:
            if names._task is None or names._task.done():  # pytest.fail: not retried
                pytest.fail(f"the names task ended: {names._task}")
            return names.names

        await eventually_async(read, 10, interval=0.02, what="the names read")
        seconds = time.monotonic() - started
        assert names.names == ("Plantuary lamp", "Snug")
        assert fake.connections == 3
        # Each close was recorded for /health before the retry, then cleared by the good read.
        for status in fake.seen[1:]:
            assert status["last_error"] == "ConnectionError: Home Assistant closed the websocket"
        assert names.status()["last_error"] is None and names.status()["connected"]
        print(f"case 8 names read after two closes: {seconds:.2f} s, 3 connections")
    finally:
        await names.stop()
        await runner.cleanup()


# --- 9: --language ------------------------------------------------------------------------------


def test_language_auto_detects_on_a_multilingual_model(start_server: Any) -> None:
    srv = start_server("-m", "base", "--preload", "--no-zeroconf", "--language", "auto")
    started = time.monotonic()
    status, body, _ = post_audio(srv.url, clip(SHORT).read_bytes())
    assert status == 200, body
    print(f"case 9 --language auto on base: {status} in {time.monotonic() - started:.2f} s")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--language", "xx"], "Unsupported language 'xx'"),
        (["-m", "tiny.en", "--language", "German"], "English-only"),
    ],
)
def test_a_language_no_model_speaks_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wyoming_whisper", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "--language" in lines[0], result.stderr


# --- 10: the smaller ones -----------------------------------------------------------------------


def bad_events(srv: ServerProcess) -> float:
    return metric(metrics(srv.url), "whisper_requests_total", route="wyoming", status="bad-event")


def test_garbage_lines_log_a_few_warnings_per_connection(server: ServerProcess) -> None:
    srv = server
    before_log, before = len(srv.log()), bad_events(srv)
    lines = 200
    with Watch(srv) as w, socket.create_connection(("127.0.0.1", srv.wyoming_port)) as conn:
        conn.sendall(b"x\n" * lines)

        def counted() -> float | None:
            faults = bad_events(srv) - before
            return faults if faults >= lines else None

        faults = eventually(counted, 10, interval=0.1, what=f"{lines} bad events counted")
    assert faults == lines  # each one still answered with an error event and counted
    # No wait for more log: each fault is logged (or not) before it is counted, so once all
    # are counted the log holds everything they will ever add.
    grown = len(srv.log()) - before_log
    assert grown < 1000, srv.log()[before_log:]
    assert "further errors on this connection are not logged" in srv.log()
    w.check()
    still_serves(srv)
    print(f"case 10a {lines} garbage lines: {grown} bytes of log,", w.summary())


def test_transcripts_stay_out_of_the_info_log(server: ServerProcess) -> None:
    before = len(server.log())
    event = asyncio.run(transcribe("127.0.0.1", server.wyoming_port, load_pcm16(clip(SHORT))))
    text = event.data["text"]
    assert text.strip()
    log = server.log()[before:]
    line = next(ln for ln in log.splitlines() if "Transcript (" in ln)
    assert "INFO" in line and "tiny.en" in line and text not in log, line


def test_api_key_from_a_file_and_transcripts_logged_when_asked(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("  s3cret-key\n")
    env = {"WHISPER_API_KEY_FILE": str(key)}
    with in_thread("-m", "tiny.en", "--preload", "--log-transcripts", env=env) as srv:
        api_key_from_a_file(srv)


def api_key_from_a_file(srv: InProcess) -> None:
    assert call(srv.url + "/v1/models", "GET")[0] == 401
    auth = {"Authorization": "Bearer s3cret-key"}
    assert call(srv.url + "/v1/models", "GET", headers=auth)[0] == 200
    assert "s3cret" not in srv.log()
    event = asyncio.run(transcribe("127.0.0.1", srv.wyoming_port, load_pcm16(clip(SHORT))))
    line = next(ln for ln in srv.log().splitlines() if "Transcript (" in ln)
    assert line.endswith(event.data["text"]), line


def test_health_shows_load_errors_without_paths(start_server: Any, tmp_path: Path) -> None:
    model = tmp_path / "private-models" / "broken"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")  # no model.bin: the error names the directory
    srv = start_server("-m", str(model), "--no-zeroconf", wait=False)
    srv.wait_ready(loaded=False)
    status, body, _ = post_audio(srv.url, clip(SHORT).read_bytes())
    (entry,) = srv.health()["models"]
    assert entry["state"] == "error" and entry["error"], entry
    assert "private-models" not in entry["error"] and len(entry["error"]) <= 200, entry
    # The model's name is the operator's (/v1/models lists it); the reason shows no path.
    assert status == 503 and body["error"]["message"].endswith(entry["error"]), body
    assert f"{model} is not a CTranslate2" in srv.log()  # the full error: the log only
    print("case 10f /health error:", entry["error"])


def test_public_reason_cuts_paths_to_their_last_part() -> None:
    cases = {
        "[Errno 17] File exists: '/data/cache/packs'": "[Errno 17] File exists: '.../packs'",
        "Unable to open file 'model.bin' in model '/srv/m/x/'": (
            "Unable to open file 'model.bin' in model '.../x'"
        ),
        "see https://huggingface.co/a/b and ~/m/y": "see https://huggingface.co/a/b and .../y",
        "C:\\models\\w failed\nTraceback line": ".../w failed",
        "": "load failed",
    }
    for given, shown in cases.items():
        assert public_reason(given) == shown
    assert len(public_reason("x" * 500)) == 200
