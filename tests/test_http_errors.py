"""Every bad input to the HTTP API gets OpenAI's error shape, and the server keeps serving.

Raw HTTP (urllib/http.client), so nothing client-side papers over what the server sends.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from wyoming_whisper.http.errors import error_middleware

from .harness import ServerProcess, clip
from .http_helpers import form_body as multipart
from .inprocess import FakeBackend, InProcess, in_thread

JFK = "openai_whisper/jfk.flac"
API_KEY = "sekret-key-123"
ORIGIN = "http://app.example"
MB = 1024 * 1024


def request(
    url: str,
    *,
    method: str = "POST",
    body: bytes | None = None,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def assert_openai_error(status: int, body: bytes, expected: int, **fields: str | None) -> dict:
    assert status == expected, body
    assert b"Traceback" not in body
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == ("server_error" if expected >= 500 else "invalid_request_error")
    for key, value in fields.items():
        assert error[key] == value, error
    return error


def transcribe_ok(url: str, headers: dict[str, str] | None = None) -> str:
    body, ctype = multipart(
        [("model", "whisper-1", None), ("file", clip(JFK).read_bytes(), "jfk.flac")]
    )
    status, _, data = request(
        url + "/v1/audio/transcriptions", body=body, content_type=ctype, headers=headers
    )
    assert status == 200, data
    text = json.loads(data)["text"]
    assert "country" in text.lower()
    return text


def uploads_left() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("whisper-upload-")}


def wav_bytes() -> bytes:
    return clip("whisper_cpp/jfk.wav").read_bytes()


BAD_AUDIO = {
    "garbage": (os.urandom(64 * 1024), "noise.mp3"),
    "empty": (b"", "empty.wav"),
    "truncated_header": (None, "cut.wav"),  # the first 30 bytes of a real WAV
    "text_as_wav": (b"This is not audio, it is a text file.\n" * 50, "notes.wav"),
    "html_as_mp3": (b"<!doctype html><html><body>hello</body></html>", "page.mp3"),
}


@pytest.mark.parametrize("case", sorted(BAD_AUDIO))
def test_bad_audio_is_400(server: ServerProcess, case: str) -> None:
    data, filename = BAD_AUDIO[case]
    if data is None:
        data = wav_bytes()[:30]
    before = uploads_left()
    body, ctype = multipart([("model", "whisper-1", None), ("file", data, filename)])
    status, _, reply = request(
        server.url + "/v1/audio/transcriptions", body=body, content_type=ctype
    )
    assert_openai_error(status, reply, 400, param="file", code="invalid_audio")
    assert uploads_left() <= before  # the temporary file is gone
    assert request(server.url + "/v1/models", method="GET")[0] == 200


def test_truncated_audio_mid_stream_is_never_a_server_error(server: ServerProcess) -> None:
    """Half a FLAC decodes to what is there (200) or is refused (400); never a 5xx."""
    data = clip(JFK).read_bytes()
    half = data[: len(data) // 2]
    body, ctype = multipart([("model", "whisper-1", None), ("file", half, "a.flac")])
    status, _, reply = request(
        server.url + "/v1/audio/transcriptions", body=body, content_type=ctype
    )
    assert status in (200, 400), reply
    if status == 400:
        assert_openai_error(status, reply, 400, param="file")


FIELD_CASES: dict[str, tuple[list[tuple[str, str]], str, str | None]] = {
    "unknown_model": ([("model", "whisper-large-v9")], "model", "model_not_found"),
    "path_model": ([("model", "/etc/passwd")], "model", "model_not_found"),
    "relative_path_model": ([("model", "../../models/base")], "model", "model_not_found"),
    "missing_model": ([], "model", "missing_required_parameter"),
    "bad_format": (
        [("model", "whisper-1"), ("response_format", "xml")],
        "response_format",
        "invalid_value",
    ),
    "bad_language": (
        [("model", "whisper-1"), ("language", "xx")],
        "language",
        "unsupported_language",
    ),
    "german_for_english_only": (
        [("model", "tiny.en"), ("language", "de")],
        "language",
        "unsupported_language",
    ),
    "temperature_text": (
        [("model", "whisper-1"), ("temperature", "hot")],
        "temperature",
        "invalid_value",
    ),
    "temperature_high": (
        [("model", "whisper-1"), ("temperature", "1.5")],
        "temperature",
        "invalid_value",
    ),
    "temperature_negative": (
        [("model", "whisper-1"), ("temperature", "-0.1")],
        "temperature",
        "invalid_value",
    ),
    "temperature_nan": (
        [("model", "whisper-1"), ("temperature", "nan")],
        "temperature",
        "invalid_value",
    ),
    "bad_granularity": (
        [("model", "whisper-1"), ("timestamp_granularities[]", "char")],
        "timestamp_granularities",
        "invalid_value",
    ),
    "bad_stream": ([("model", "whisper-1"), ("stream", "maybe")], "stream", "invalid_value"),
}


@pytest.mark.parametrize("case", sorted(FIELD_CASES))
def test_bad_fields_are_400(server: ServerProcess, case: str) -> None:
    fields, param, code = FIELD_CASES[case]
    parts: list[tuple[str, str | bytes, str | None]] = [(k, v, None) for k, v in fields]
    body, ctype = multipart([*parts, ("file", wav_bytes(), "jfk.wav")])
    status, _, reply = request(
        server.url + "/v1/audio/transcriptions", body=body, content_type=ctype
    )
    error = assert_openai_error(status, reply, 400, param=param, code=code)
    if case in ("unknown_model", "path_model"):
        assert dict(fields)["model"] in error["message"]
    assert request(server.url + "/v1/models", method="GET")[0] == 200


def test_missing_file(server: ServerProcess) -> None:
    body, ctype = multipart([("model", "whisper-1", None)])
    status, _, reply = request(
        server.url + "/v1/audio/transcriptions", body=body, content_type=ctype
    )
    assert_openai_error(status, reply, 400, param="file", code="missing_required_parameter")


def test_file_before_model_field_still_works(server: ServerProcess) -> None:
    body, ctype = multipart([("file", wav_bytes(), "jfk.wav"), ("model", "whisper-1", None)])
    status, _, reply = request(
        server.url + "/v1/audio/transcriptions", body=body, content_type=ctype
    )
    assert status == 200 and "country" in json.loads(reply)["text"].lower()


@pytest.mark.parametrize(
    ("method", "path", "body", "ctype", "expected"),
    [
        ("POST", "/v1/audio/transcriptions", b'{"model": "whisper-1"}', "application/json", 415),
        ("POST", "/v1/audio/transcriptions", b"--x\r\nbroken", "multipart/form-data", 400),
        ("GET", "/v1/audio/transcriptions", None, None, 405),
        ("GET", "/v1/nothing-here", None, None, 404),
        ("POST", "/v1/model/unload", b"{not json", "application/json", 400),
        ("POST", "/v1/model/unload", b"[" * 30000 + b"]" * 30000, "application/json", 400),
        ("POST", "/v1/model/unload", b"[" * 100000 + b"]" * 100000, "application/json", 413),
        ("POST", "/v1/model/unload", b'{"model": "nope"}', "application/json", 400),
        ("POST", "/v1/model/unload", b"model=x", "text/plain", 415),
    ],
)
def test_protocol_errors(
    server: ServerProcess, method: str, path: str, body: bytes | None, ctype: str, expected: int
) -> None:
    status, _, reply = request(server.url + path, method=method, body=body, content_type=ctype)
    assert_openai_error(status, reply, expected)


def _stream_upload(url: str, total: int, headers: dict[str, str]) -> tuple[int, bytes, int]:
    """POST a generated multipart body of ``total`` bytes, chunked, never held in memory."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    block = os.urandom(1 * MB)
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield head
        while sent < total:
            sent += len(block)
            yield block
        yield tail

    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        conn.putrequest("POST", "/v1/audio/transcriptions")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Transfer-Encoding", "chunked")
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.endheaders()
        try:
            for chunk in chunks():
                conn.send(f"{len(chunk):X}\r\n".encode() + chunk + b"\r\n")
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading once it has answered
        resp = conn.getresponse()
        return resp.status, resp.read(), sent
    finally:
        conn.close()


def test_300_mb_upload_is_413_with_flat_memory(server: ServerProcess) -> None:
    """The default --max-upload-mb (200) stops a 300 MB body; nothing is buffered in memory."""
    assert server.proc is not None
    proc = psutil.Process(server.proc.pid)
    files_before = uploads_left()
    before = proc.memory_info().rss
    peak = before
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        status, reply, sent = _stream_upload(server.url, 300 * MB, {})
        assert sent >= 300 * MB
    finally:
        stop.set()
        sampler.join()
    error = assert_openai_error(status, reply, 413, param="file", code="too_large")
    assert "200 MB" in error["message"]
    print(f"300 MB upload: 413, server RSS peak growth {(peak - before) / MB:.1f} MB")
    assert peak - before < 50 * MB, f"server RSS grew {(peak - before) / MB:.0f} MB"
    assert uploads_left() <= files_before
    transcribe_ok(server.url)


def test_error_middleware_turns_a_fault_into_a_logged_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    async def run() -> tuple[int, bytes]:
        app = web.Application(middlewares=[error_middleware])
        app.router.add_get("/boom", boom)
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/boom")
            return resp.status, await resp.read()

    import asyncio

    with caplog.at_level(logging.ERROR):
        status, body = asyncio.run(run())
    assert_openai_error(status, body, 500, code=None)
    assert b"secret internals" not in body
    assert "secret internals" in caplog.text and "Traceback" in caplog.text


# -- a server with --api-key, --cors-origins and a small --max-upload-mb (in process) -------


# The JFK clip's words, as the in-process server's fake model answers them.
FAKE_JFK = " And so, my fellow Americans, ask not what your country can do for you."


@pytest.fixture(scope="module")
def locked() -> Iterator[InProcess]:
    """In process (its own loop, in a thread: the tests here are plain urllib)."""
    backend = FakeBackend(text=FAKE_JFK)
    backend.gate.set()
    backend.release.set()
    flags = ("--no-wyoming", "--cors-origins", ORIGIN, "--max-upload-mb", "5")
    with in_thread(
        "-m", "tiny.en", "--preload", *flags, backend=backend, env={"WHISPER_API_KEY": API_KEY}
    ) as srv:
        yield srv


AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": API_KEY},
        {"Authorization": "Bearer "},
    ],
    ids=["none", "wrong", "no-scheme", "empty"],
)
def test_wrong_api_key_is_401(locked: InProcess, headers: dict[str, str]) -> None:
    for path in ("/v1/models", "/v1/audio/transcriptions"):
        method = "GET" if path == "/v1/models" else "POST"
        status, _, reply = request(locked.url + path, method=method, headers=headers)
        assert_openai_error(status, reply, 401, code="invalid_api_key")


def test_api_key_leaves_health_and_docs_open(locked: InProcess) -> None:
    status, _, reply = request(locked.url + "/health", method="GET")
    assert status == 200 and json.loads(reply)["status"] == "ok"
    assert request(locked.url + "/openapi.json", method="GET")[0] == 200
    assert request(locked.url + "/ready", method="GET")[0] == 200
    status, _, reply = request(locked.url + "/v1/models", method="GET", headers=AUTH)
    assert status == 200 and json.loads(reply)["data"][0]["id"] == "tiny.en"
    transcribe_ok(locked.url, AUTH)


def test_api_key_with_the_sdk(locked: InProcess) -> None:
    import openai

    good = openai.OpenAI(base_url=locked.url + "/v1", api_key=API_KEY, max_retries=0)
    with open(clip(JFK), "rb") as f:
        assert "country" in good.audio.transcriptions.create(file=f, model="whisper-1").text
    bad = openai.OpenAI(base_url=locked.url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.body["code"] == "invalid_api_key"  # type: ignore[index]


def test_declared_oversize_body_is_refused_up_front(locked: InProcess) -> None:
    body, ctype = multipart([("model", "whisper-1", None), ("file", os.urandom(6 * MB), "a.wav")])
    status, _, reply = request(
        locked.url + "/v1/audio/transcriptions", body=body, content_type=ctype, headers=AUTH
    )
    error = assert_openai_error(status, reply, 413, code="too_large")
    assert "5 MB" in error["message"]
    streamed, reply, _ = _stream_upload(locked.url, 40 * MB, AUTH)
    assert_openai_error(streamed, reply, 413, code="too_large")
    transcribe_ok(locked.url, AUTH)


def test_cors(locked: InProcess) -> None:
    status, headers, _ = request(
        locked.url + "/v1/audio/transcriptions",
        method="OPTIONS",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Allow-Headers"] == "authorization"
    # Answers, errors included, carry the header for an allowed origin only.
    status, headers, _ = request(
        locked.url + "/v1/models", method="GET", headers={"Origin": ORIGIN}
    )
    assert status == 401 and headers["Access-Control-Allow-Origin"] == ORIGIN
    status, headers, _ = request(
        locked.url + "/v1/models", method="GET", headers={"Origin": "http://evil.example", **AUTH}
    )
    assert status == 200 and "Access-Control-Allow-Origin" not in headers


async def test_realtime_api_key_as_header_or_browser_subprotocol(locked: InProcess) -> None:
    import aiohttp

    url = locked.url + "/v1/realtime?intent=transcription"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, headers={"Authorization": "Bearer nope"}) as ws:
            got = await ws.receive_json(timeout=10)
            assert got["type"] == "error" and got["error"]["code"] == "invalid_api_key", got
            closing = await ws.receive(timeout=10)
            assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1008
        async with http.ws_connect(url, headers=AUTH) as ws:
            assert (await ws.receive_json(timeout=10))["type"] == "session.created"
        # A browser cannot set headers: it offers the key as a subprotocol, beside "realtime".
        offered = ("realtime", f"openai-insecure-api-key.{API_KEY}")
        async with http.ws_connect(url, protocols=offered) as ws:
            assert ws.protocol == "realtime"  # echoed, or the browser drops the connection
            assert (await ws.receive_json(timeout=10))["type"] == "session.created"


def test_one_key_check_for_every_door() -> None:
    """http/auth.py: the header everywhere; the query parameter and the subprotocol only where
    a door allows them (browsers' WebSockets); the same answers for a missing and a wrong key."""
    from aiohttp.test_utils import make_mocked_request

    from wyoming_whisper.errors import Unauthorized
    from wyoming_whisper.http.auth import check_key

    def answer(path: str, headers: dict[str, str] | None = None, **ways: bool) -> str:
        try:
            check_key(make_mocked_request("GET", path, headers=headers or {}), "k3y", **ways)
        except Unauthorized as err:
            return err.message
        return "ok"

    assert answer("/v1/models", {"Authorization": "Bearer k3y"}) == "ok"
    assert answer("/v1/models", {"authorization": "bearer k3y"}) == "ok"
    assert answer("/v1/models", {"Authorization": "Bearer nope"}) == "Incorrect API key provided."
    assert answer("/v1/models").startswith("You didn't provide an API key.")
    assert answer("/v1/models?token=k3y").startswith("You didn't provide")  # not on REST routes
    assert answer("/stream?token=k3y", query=True) == "ok"
    assert answer("/stream?token=nope", query=True) == "Incorrect API key provided."
    assert "token=<key>" in answer("/stream", query=True)
    offered = {"Sec-WebSocket-Protocol": "realtime, openai-insecure-api-key.k3y"}
    assert answer("/v1/realtime", offered, protocol=True) == "ok"
    assert answer("/v1/realtime", offered).startswith("You didn't provide")
    assert "openai-insecure-api-key.<key>" in answer("/v1/realtime", protocol=True)
