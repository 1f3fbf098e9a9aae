"""Real answers of every route, checked against the schemas of the served /openapi.json.

The document is written by hand (http/docs.py); its schemas forbid fields they do not name, so a
field a handler adds without documenting it fails here, as does a documented one that is gone.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from .harness import ServerProcess, clip
from .http_helpers import COUNT, SHORT, form_body
from .test_http_errors import request


@pytest.fixture(scope="module")
def spec(server: ServerProcess) -> dict[str, Any]:
    status, _, body = request(server.url + "/openapi.json", method="GET")
    assert status == 200
    return dict(json.loads(body))


def check(
    spec: dict[str, Any], path: str, method: str, status: int, headers: dict, body: bytes
) -> Any:
    """The answer's status and media type are documented for the route; JSON fits its schema."""
    responses = spec["paths"][path][method]["responses"]
    assert str(status) in responses, (path, status, body[:300])
    media = headers.get("Content-Type", "").split(";")[0].strip()
    content = responses[str(status)]["content"]
    assert media in content, (path, status, media, list(content))
    schema = content[media]["schema"]
    if media != "application/json":
        assert schema["type"] == "string"
        return body.decode()
    data = json.loads(body)
    validator = Draft202012Validator({**schema, "components": spec["components"]})
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert not problems, (path, status, problems)
    return data


def call(server: ServerProcess, spec: dict, method: str, path: str, route: str = "", **kw: Any):
    status, headers, body = request(server.url + path, method=method.upper(), **kw)
    return check(spec, route or path.split("?")[0], method, status, headers, body)


def upload(
    server: ServerProcess, spec: dict, route: str, fields: list[tuple[str, str]], audio: str
) -> Any:
    parts: list[tuple[str, str | bytes, str | None]] = [(k, v, None) for k, v in fields]
    body, ctype = form_body([*parts, ("file", clip(audio).read_bytes(), "audio.wav")])
    return call(server, spec, "post", route, body=body, content_type=ctype)


def test_operations_and_models(server: ServerProcess, spec: dict) -> None:
    health = call(server, spec, "get", "/health")
    assert {m["name"] for m in health["models"]} == {"tiny.en", "base"}
    assert all(m["ttl_seconds"] == m["ttl"] for m in health["models"])
    assert call(server, spec, "get", "/ready")["ready"] is True
    listed = call(server, spec, "get", "/v1/models")
    assert [m["id"] for m in listed["data"]] == ["tiny.en", "base"]
    call(server, spec, "get", "/v1/models/tiny.en", "/v1/models/{model}")
    missing = call(server, spec, "get", "/v1/models/nope", "/v1/models/{model}")
    assert missing["error"]["code"] == "not_found"


@pytest.mark.parametrize("media", ["json", "form", "query", "none"])
def test_unload_in_every_documented_shape(server: ServerProcess, spec: dict, media: str) -> None:
    """Unload base (the next request that names it loads it again)."""
    path, kw = "/v1/model/unload", {}
    if media == "json":
        kw = {"body": b'{"model": "base"}', "content_type": "application/json"}
    elif media == "form":
        kw = {"body": b"model=base", "content_type": "application/x-www-form-urlencoded"}
    elif media == "query":
        path += "?" + urllib.parse.urlencode({"model": "base"})
    answer = call(server, spec, "post", path, **kw)
    assert answer["status"] == "success"
    assert answer.get("model", "base") == "base"


@pytest.mark.parametrize("shape", ["json", "verbose_json", "text", "srt", "vtt"])
def test_every_transcription_format(server: ServerProcess, spec: dict, shape: str) -> None:
    fields = [("model", "tiny.en"), ("response_format", shape)]
    if shape == "verbose_json":
        fields += [("timestamp_granularities[]", "word"), ("timestamp_granularities[]", "segment")]
    answer = upload(server, spec, "/v1/audio/transcriptions", fields, SHORT)
    if shape == "verbose_json":
        assert answer["segments"] and answer["words"] and answer["language"] == "english"


def test_translation_and_its_language(server: ServerProcess, spec: dict) -> None:
    fields = [("model", "base"), ("language", "en"), ("response_format", "verbose_json")]
    answer = upload(server, spec, "/v1/audio/translations", fields, COUNT)
    assert answer["task"] == "translate"


def test_server_sent_events(server: ServerProcess, spec: dict) -> None:
    fields = [("model", "tiny.en"), ("stream", "true")]
    text = upload(server, spec, "/v1/audio/transcriptions", fields, COUNT)
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    schemas = spec["components"]["schemas"]
    for event in events:
        name = "TranscriptTextDone" if event["type"].endswith("done") else "TranscriptTextDelta"
        Draft202012Validator(schemas[name]).validate(event)
    assert events[-1]["type"] == "transcript.text.done"


@pytest.mark.parametrize(
    "fields",
    [[("model", "nope")], [("model", "tiny.en"), ("language", "de")], [("response_format", "x")]],
)
def test_errors(server: ServerProcess, spec: dict, fields: list[tuple[str, str]]) -> None:
    answer = upload(server, spec, "/v1/audio/transcriptions", fields, SHORT)
    assert answer["error"]["message"]
