"""The built-in page at GET /, driven in headless Chromium against the real server and model.

Chromium is Debian's package (``apt-get install chromium``), launched by Playwright through its
executable path; its fake microphone plays a real clip (``--use-file-for-fake-audio-capture``).
One test runs the page behind a reverse proxy that adds a path prefix, as Home Assistant's
ingress does.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from wyoming_whisper.config import Config
from wyoming_whisper.http.ui import base_href

from .harness import REPO, ServerProcess, clip, free_port, words

pytestmark = pytest.mark.slow  # a real Chromium

playwright_sync = pytest.importorskip("playwright.sync_api")

STATIC = REPO / "wyoming_whisper" / "http" / "static"
JFK = "whisper_cpp/jfk.wav"
JFK_WORDS = words("ask not what your country can do for you")
SHORT = "picovoice_leopard/test.wav"  # "Mr. Quilter is the apostle of the middle classes ..."
SCREENSHOT = REPO / "docs" / "screenshot.png"
CLOCK = re.compile(r"^\d+:\d\d\.\d\d$")
TIMEOUT_MS = 60_000


def contains(text: str, expected: list[str]) -> bool:
    return " ".join(expected) in " ".join(words(text))


def chromium_path() -> str:
    path = os.environ.get("WHISPER_CHROMIUM") or shutil.which("chromium")
    if not path:
        message = "Chromium is missing: apt-get install chromium (or set WHISPER_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it; a skip there would hide the page's tests
        pytest.skip(message)
    return path


def fake_microphone_wav(source: Path, target: Path) -> float:
    """The clip with 0.5 s of silence before and 2.5 s after (Chromium loops the file)."""
    with wave.open(str(source)) as src:
        assert (src.getnchannels(), src.getsampwidth()) == (1, 2)
        rate = src.getframerate()
        frames = src.readframes(src.getnframes())
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * (rate // 2) + frames + b"\0\0" * (rate * 5 // 2))
        return out.getnframes() / rate


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    target = tmp_path_factory.mktemp("mic") / "jfk-padded.wav"
    return target, fake_microphone_wav(clip(JFK), target)


@pytest.fixture(scope="module")
def browser(mic_wav: tuple[Path, float]) -> Iterator[Any]:
    executable = chromium_path()
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic_wav[0]}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()
    assert not errors, errors  # no uncaught JavaScript exception on the page


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_function("document.getElementById('model').options.length > 0")


def upload(page: Any, path: Path) -> None:
    page.set_input_files("#file", str(path))
    page.wait_for_selector("body[data-status=done], body[data-status=error]")
    assert page.get_attribute("body", "data-status") == "done", page.inner_text("#upload-error")


def segment_rows(page: Any) -> list[list[str]]:
    return page.eval_on_selector_all(
        "#segments tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )


def download(page: Any, link: str) -> str:
    return page.evaluate(f"fetch(document.getElementById('{link}').href).then(r => r.text())")


# --- tests -----------------------------------------------------------------------------------


def test_page_and_assets_are_served_offline_with_relative_urls(server: ServerProcess) -> None:
    with urllib.request.urlopen(server.url + "/", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
        page = resp.read().decode()
    assert "./docs/assets/app.js" in page and "./docs/assets/app.css" in page
    for name in ("index.html", "app.js", "app.css", "recorder-worklet.js", "docs.html", "docs.js"):
        text = (STATIC / name).read_text()
        assert "http://" not in text and "https://" not in text, name  # no CDN, nothing external
        # Absolute paths would escape an ingress prefix: every URL must be relative.
        assert not re.search(r"""["'`(]/(v1|health|docs|openapi)""", text), name
    for asset in ("app.js", "app.css", "recorder-worklet.js"):
        with urllib.request.urlopen(f"{server.url}/docs/assets/{asset}", timeout=10) as resp:
            assert resp.status == 200 and len(resp.read()) > 500


def test_addon_opens_this_page_through_ingress() -> None:
    """config.yaml sends Home Assistant's ingress to the HTTP port, where / is this page."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert config["ingress"] is True
    assert config["ingress_port"] == Config().port == 10301
    assert f"{config['ingress_port']}/tcp" in config["ports"]
    assert config["panel_icon"].startswith("mdi:")


def test_ingress_path_header_sets_base_href(server: ServerProcess) -> None:
    request = urllib.request.Request(
        server.url + "/", headers={"X-Ingress-Path": "/api/hassio_ingress/abc-123"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert '<base href="/api/hassio_ingress/abc-123/">' in resp.read().decode()
    bad = urllib.request.Request(server.url + "/", headers={"X-Ingress-Path": '/x"><script>'})
    with urllib.request.urlopen(bad, timeout=10) as resp:
        assert "<base" not in resp.read().decode()


def test_upload_shows_transcript_segments_words_and_downloads(
    server: ServerProcess, page: Any, tmp_path: Path
) -> None:
    open_page(page, server.url + "/")
    options = page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")
    assert options == ["tiny.en", "base"]
    assert page.input_value("#model") == "tiny.en"  # the default model is preselected
    # (The session's server may have unloaded an idle model by now: any state is fine here.)
    states = page.eval_on_selector_all("#model-list li", "ls => ls.map(l => l.dataset.state)")
    assert len(states) == 2 and set(states) <= {"loaded", "loading", "unloaded"}

    upload(page, clip(JFK))
    page.wait_for_selector("#model-state[data-state=loaded]")
    page.wait_for_selector("#model-list li[data-model='tiny.en'][data-state=loaded]")
    assert contains(page.inner_text("#text"), JFK_WORDS), page.inner_text("#text")
    assert page.inner_text("#result-language").startswith("English")
    assert page.inner_text("#result-duration") == "11.00 s"
    assert re.match(r"^\d+\.\d\d s \(upload and decoding\)$", page.inner_text("#result-elapsed"))
    assert page.get_attribute("#upload-progress", "value") == "1"

    rows = segment_rows(page)
    assert rows, "no segment rows"
    for i, (number, start, end, text) in enumerate(rows, 1):
        assert number == str(i) and text.strip(), (number, text)
        assert CLOCK.match(start) and CLOCK.match(end), (start, end)
    assert rows[0][1] == "0:00.00"
    assert contains(" ".join(r[3] for r in rows), JFK_WORDS)

    word_spans = page.eval_on_selector_all(
        "#words .word", "ws => ws.map(w => [w.firstChild.textContent, +w.dataset.start])"
    )
    spoken = [w for w, _ in word_spans]
    assert contains(" ".join(spoken), JFK_WORDS), spoken
    starts = [s for _, s in word_spans]
    assert starts == sorted(starts) and 0 <= starts[0] < starts[-1] <= 11.0

    srt = download(page, "dl-srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:") and "country" in srt
    assert download(page, "dl-vtt").startswith("WEBVTT\n\n00:00:00.000 --> ")
    assert contains(download(page, "dl-txt"), JFK_WORDS)
    assert '"segments"' in download(page, "dl-json")

    # A click on a segment plays that part of the uploaded audio.
    last = page.locator("#segments tbody tr").last
    start = float(last.get_attribute("data-start") or 0)
    last.click()
    page.wait_for_function(
        f"(() => {{ const p = document.getElementById('player');"
        f" return !p.paused && p.currentTime >= {start}; }})()"
    )

    page.screenshot(path=str(tmp_path / "upload.png"), full_page=True)
    # The README's picture: rewritten only on request, so a test run leaves the checkout clean.
    if os.environ.get("WHISPER_UPDATE_SCREENSHOT") or not SCREENSHOT.exists():
        page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_microphone_streams_partials_then_the_final(
    ingress: str, page: Any, mic_wav: tuple[Path, float], tmp_path: Path
) -> None:
    """Through the ingress-like prefix proxy, so the WebSocket URL is checked there too."""
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    open_page(page, ingress)
    page.click("#record")
    page.wait_for_selector("body[data-status=recording]")
    # Partials arrive while the (fake) microphone is still speaking...
    page.wait_for_function("+document.getElementById('partial').dataset.count > 0")
    first_partial = page.inner_text("#partial")
    reference = words("And so my fellow Americans, ask not what your country can do for you")
    assert set(words(first_partial)) & set(reference), first_partial  # the clip's own words
    assert page.get_attribute("body", "data-status") == "recording"
    # ... and the final once the clip (0.5 s silence + 11 s speech) has been heard and we stop.
    page.wait_for_function("parseFloat(document.getElementById('record-time').textContent) >= 12")
    page.click("#record")
    page.wait_for_selector("body[data-status=done], body[data-status=error]")
    assert page.get_attribute("body", "data-status") == "done", page.inner_text("#record-error")
    text = page.inner_text("#text")
    assert contains(text, JFK_WORDS), text
    partials = int(page.get_attribute("#partial", "data-count") or 0)
    assert partials >= 1 and f"{partials} partial" in page.inner_text("#result-source")
    assert page.inner_text("#result-language").startswith("English")
    assert re.match(r"^\d+\.\d\d s after you stopped$", page.inner_text("#result-elapsed"))
    duration = float(page.inner_text("#result-duration").split()[0])
    assert 11.5 <= duration <= mic_wav[1] + 2.0

    rows = segment_rows(page)
    assert rows and all(CLOCK.match(r[1]) and CLOCK.match(r[2]) for r in rows), rows
    assert page.locator("#words .word").count() >= len(JFK_WORDS)  # words asked over the socket
    # The recording is kept as a WAV for playback: its length is what was streamed.
    recorded = page.evaluate(
        """new Promise(done => { const p = document.getElementById('player');
           if (p.readyState >= 1) done(p.duration);
           else p.onloadedmetadata = () => done(p.duration); })"""
    )
    assert abs(recorded - duration) < 0.1, (recorded, duration)
    prefix = ingress.replace("http://", "ws://", 1)
    assert len(sockets) == 1 and sockets[0].startswith(prefix + "v1/audio/transcriptions/stream?")
    page.screenshot(path=str(tmp_path / "microphone.png"), full_page=True)
    if os.environ.get("WHISPER_UI_SCREENSHOTS"):  # for looking at it by hand
        page.screenshot(path=os.environ["WHISPER_UI_SCREENSHOTS"] + "/microphone.png")


def test_unload_shows_live_state_and_the_next_request_loads_again(
    server: ServerProcess, page: Any
) -> None:
    open_page(page, server.url + "/")
    page.select_option("#model", "base")
    upload(page, clip(SHORT))  # loads base if the session's server had let it go idle
    assert page.inner_text("#result-model") == "base"
    page.wait_for_selector("#model-state[data-state=loaded]")
    page.click("#unload")
    page.wait_for_selector("#model-state[data-state=unloaded]")
    page.wait_for_selector("#model-list li[data-model=base][data-state=unloaded]")
    assert page.is_disabled("#unload")
    assert {m["name"]: m["state"] for m in server.health()["models"]}["base"] == "unloaded"
    # Transcribing with the unloaded model loads it again; the page shows it loaded.
    upload(page, clip(SHORT))
    assert contains(page.inner_text("#text"), words("apostle of the middle classes"))
    page.wait_for_selector("#model-list li[data-model=base][data-state=loaded]")
    server.wait_ready()


def test_api_key_is_asked_once_and_kept_in_the_tab(start_server: Any, page: Any) -> None:
    srv = start_server("-m", "tiny.en", "--preload", "--no-zeroconf", "--api-key", "s3cret")
    page.goto(srv.url + "/")
    page.wait_for_selector("#key-form:not([hidden])")
    page.fill("#api-key", "wrong")
    page.click("#key-form button")
    page.wait_for_function("document.getElementById('key-error').textContent.includes('refused')")
    page.fill("#api-key", "s3cret")
    page.click("#key-form button")
    page.wait_for_function("document.getElementById('model').options.length > 0")
    assert page.is_hidden("#key-form")
    upload(page, clip(SHORT))  # the XHR upload sends the key too
    assert contains(page.inner_text("#text"), words("apostle of the middle classes"))
    page.reload()  # kept in this tab: no second question
    page.wait_for_function("document.getElementById('model').options.length > 0")
    assert page.is_hidden("#key-form")
    # The WebSocket takes the key as its token parameter (browsers cannot set its headers).
    page.click("#record")
    page.wait_for_function("parseFloat(document.getElementById('record-time').textContent) >= 3")
    page.click("#record")
    page.wait_for_selector("body[data-status=done], body[data-status=error]")
    assert page.get_attribute("body", "data-status") == "done", page.inner_text("#record-error")
    assert words(page.inner_text("#text"))[:2] == ["and", "so"], page.inner_text("#text")


# --- behind a path prefix, as Home Assistant's ingress serves it ------------------------------


class PrefixProxy:
    """``/api/hassio_ingress/<token>/...`` -> the server's ``/...``, WebSockets included,
    with the X-Ingress-Path header that the Supervisor adds."""

    def __init__(self, upstream: str, prefix: str) -> None:
        self.upstream = upstream
        self.prefix = prefix
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        target = f"{self.upstream}/{tail}"
        if request.query_string:
            target += "?" + request.query_string
        # Host and Origin pass through unchanged, as Home Assistant's and the Supervisor's
        # ingress proxies forward them: the page's requests stay same-origin for the server.
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        headers["X-Ingress-Path"] = self.prefix
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await self._websocket(request, session, target)
            async with session.request(
                request.method, target, headers=headers, data=await request.read()
            ) as up:
                body = await up.read()
                keep = {"content-type", "content-encoding", "cache-control", "etag"}
                out = {k: v for k, v in up.headers.items() if k.lower() in keep}
                return web.Response(status=up.status, body=body, headers=out)

    async def _websocket(
        self, request: web.Request, session: aiohttp.ClientSession, target: str
    ) -> web.StreamResponse:
        client = web.WebSocketResponse(max_msg_size=0)
        await client.prepare(request)
        async with session.ws_connect(target.replace("http", "ws", 1), max_msg_size=0) as up:

            async def pump(src: Any, dst: Any) -> None:
                async for msg in src:
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        await dst.send_bytes(msg.data)
                    elif msg.type == aiohttp.WSMsgType.TEXT:
                        await dst.send_str(msg.data)
                await dst.close()

            await asyncio.gather(pump(client, up), pump(up, client))
        return client

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", self.prefix + "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> PrefixProxy:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def ingress(server: ServerProcess) -> Iterator[str]:
    """The page's URL behind the prefix proxy."""
    prefix = "/api/hassio_ingress/Zx9-token"
    with PrefixProxy(server.url, prefix) as proxy:
        yield f"http://127.0.0.1:{proxy.port}{prefix}/"


def test_upload_works_under_an_ingress_path_prefix(ingress: str, page: Any) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    open_page(page, ingress)
    upload(page, clip(SHORT))
    page.wait_for_selector("#model-list li[data-model='tiny.en'][data-state=loaded]")
    assert contains(page.inner_text("#text"), words("apostle of the middle classes"))
    assert len(segment_rows(page)) >= 1
    # The API docs page it links to works there too.
    page.click("text=API docs")
    page.wait_for_selector("#operations details.op")
    assert page.url == ingress + "docs"
    outside = [u for u in requests if not u.startswith((ingress, "blob:"))]
    assert len(requests) >= 8 and not outside, outside


@pytest.mark.parametrize(
    ("header", "base"),
    [
        ("/api/hassio_ingress/Ab_1-2", "/api/hassio_ingress/Ab_1-2/"),
        ("/api/hassio_ingress/tok/", "/api/hassio_ingress/tok/"),
        (None, None),
        ("", None),
        ("//evil.example/x", None),
        ("/a/../b", None),
        ("/a/..", None),
        ('/a"b', None),
        ("relative/path", None),
    ],
)
def test_base_href_accepts_only_a_plain_path_prefix(header: str | None, base: str | None) -> None:
    assert base_href(header) == base
