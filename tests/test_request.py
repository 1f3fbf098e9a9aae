"""One request path (wyoming_whisper/request.py): its rules, and the same fault answered alike on
HTTP, the WebSocket and Wyoming by the real server."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import aiohttp
import pytest
from wyoming.asr import Transcribe
from wyoming.client import AsyncTcpClient

from wyoming_whisper.backends.base import FALLBACK_TEMPERATURES
from wyoming_whisper.errors import InvalidRequest, ModelNotFound, Unsupported, WhisperError
from wyoming_whisper.languages import check_language
from wyoming_whisper.request import build_request, parse_granularities, parse_json

from .harness import ServerProcess, clip
from .http_helpers import COUNT, WS_PATH, post_audio
from .wyoming_client import load_pcm16, read_until, send_audio


class Served:
    """The one thing build_request asks of the engine: map a model name onto a served one."""

    def model_name(self, requested: str | None) -> str:
        if requested in (None, "whisper-1"):
            return "tiny.en"
        if requested in ("tiny.en", "base"):
            return requested
        raise ModelNotFound(f"The model '{requested}' does not exist", param="model")


def fault(**fields: object) -> WhisperError:
    with pytest.raises(WhisperError) as info:
        build_request(Served(), **fields)  # type: ignore[arg-type]
    return info.value


# --- the rules -------------------------------------------------------------------------------


def test_a_plain_request_takes_the_defaults() -> None:
    req = build_request(Served(), model=None)  # type: ignore[arg-type]
    assert (req.model, req.task, req.language, req.prompt) == ("tiny.en", "transcribe", None, None)
    assert req.temperature == FALLBACK_TEMPERATURES and not req.word_timestamps


def test_fields_are_normalised() -> None:
    req = build_request(
        Served(),  # type: ignore[arg-type]
        model=" base ",
        language="German",
        prompt="  Ecobee  ",
        hotwords=["Plantuary lamp", " ", "Ecobee", "Plantuary lamp"],
        temperature="0.4",
        granularities=["word,segment"],
    )
    assert (req.model, req.language, req.prompt) == ("base", "de", "Ecobee")
    assert req.hotwords == ("Plantuary lamp", "Ecobee")
    assert req.temperature == (0.4,) and req.word_timestamps


LANGUAGE = ("language", "unsupported_language")
VALUE = "invalid_value"


@pytest.mark.parametrize(
    ("fields", "kind", "param", "code"),
    [
        ({"model": "large-v9"}, ModelNotFound, "model", "model_not_found"),
        ({"model": "tiny.en", "language": "de"}, InvalidRequest, *LANGUAGE),
        ({"model": "base", "language": "klingon"}, InvalidRequest, *LANGUAGE),
        ({"model": "tiny.en", "task": "translate"}, Unsupported, "model", "unsupported"),
        ({"model": None, "granularities": ["a"]}, InvalidRequest, "timestamp_granularities", VALUE),
        ({"model": "base", "temperature": "hot"}, InvalidRequest, "temperature", "invalid_value"),
        ({"model": "base", "response_format": "xml"}, InvalidRequest, "response_format", VALUE),
        ({"model": "base", "prompt": "x" * 4001}, InvalidRequest, "prompt", "invalid_value"),
        ({"model": "base", "language": 7}, InvalidRequest, "language", "invalid_value"),
    ],
)  # fmt: skip
def test_each_fault_has_one_error(fields: dict, kind: type, param: str, code: str) -> None:
    err = fault(**fields)
    assert type(err) is kind and (err.param, err.code) == (param, code), err


def test_english_only_is_known_by_name_or_told() -> None:
    check_language("base", "de")
    check_language("tiny.en", "en")
    check_language("tiny.en", None)
    with pytest.raises(InvalidRequest):
        check_language("my-model", "de", english_only=True)
    with pytest.raises(Unsupported):
        check_language("my-model", None, "translate", english_only=True)


def test_granularities_repeated_or_comma_separated() -> None:
    assert parse_granularities(["word", "segment,word", " "]) == {"word", "segment"}


# --- the same fault on every door ---------------------------------------------------------------

GERMAN = "model 'tiny.en' is English-only; it cannot transcribe language 'de'"


def test_german_for_english_only_on_http(server: ServerProcess) -> None:
    status, body, _ = post_audio(
        server.url,
        clip(COUNT).read_bytes(),
        {"model": "tiny.en", "language": "de"},
    )
    assert status == 400
    assert body["error"]["message"] == GERMAN
    assert (body["error"]["param"], body["error"]["code"]) == ("language", "unsupported_language")


async def test_german_for_english_only_on_the_websocket(server: ServerProcess) -> None:
    query = urlencode({"model": "tiny.en", "language": "de"})
    url = f"ws://127.0.0.1:{server.port}{WS_PATH}?{query}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_bytes(load_pcm16(clip(COUNT)))
        await ws.send_bytes(b"EOS")
        message = json.loads((await ws.receive()).data)
        await ws.receive()
    assert message == {
        "type": "error",
        "message": GERMAN,
        "code": "unsupported_language",
        "param": "language",
    }
    assert ws.close_code == 1008


async def test_german_for_english_only_on_wyoming(server: ServerProcess) -> None:
    pcm = load_pcm16(clip(COUNT))
    async with AsyncTcpClient("127.0.0.1", server.wyoming_port) as client:
        await send_audio(client, pcm, transcribe=Transcribe(name="tiny.en", language="de"))
        error = (await read_until(client, "transcript"))[-1]
    assert error.type == "error"
    assert (error.data["text"], error.data["code"]) == (GERMAN, "unsupported_language")
    assert error.data["param"] == "language"  # (as HTTP's error body and the WebSocket say)
    # The connection is answered, and the next one is served as usual.
    async with AsyncTcpClient("127.0.0.1", server.wyoming_port) as client:
        await send_audio(client, pcm, transcribe=Transcribe(name="tiny.en", language="en"))
        assert (await read_until(client, "transcript"))[-1].type == "transcript"


def test_costly_json_is_refused_before_parsing() -> None:
    """Past CHEAP_JSON_BYTES the containers and separators are counted before parsing: a long
    string (a Realtime append's base64) is parsed, seven million empty lists are not."""
    cheap = json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (5 << 20)})
    assert parse_json(cheap)["type"] == "input_audio_buffer.append"
    names = json.dumps({"names": [f"name {i}" for i in range(50_000)]})  # a long list is fine
    assert len(parse_json(names.encode())["names"]) == 50_000
    for bomb in ("[" + "[]," * 200_000 + "[]]", b"[" + b"0," * 200_000 + b"0]"):
        started = time.perf_counter()
        with pytest.raises(ValueError, match="more than 100000 values"):
            parse_json(bomb)
        assert time.perf_counter() - started < 0.05


def test_json_nested_too_deeply_is_malformed_input() -> None:
    """What every door's JSON reader raises for a client's JSON: ValueError, even where the
    parser itself would hit its recursion limit."""
    assert parse_json('{"a": [1]}') == {"a": [1]}
    for bad in ("{not json", "[" * 100_000 + "]" * 100_000, b"\xff\xfe"):
        with pytest.raises(ValueError):
            parse_json(bad)
