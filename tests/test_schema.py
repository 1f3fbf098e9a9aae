"""The OpenAPI spec is valid, and property-based requests from it never get a 5xx.

schemathesis generates requests (valid and invalid) from /openapi.json and sends them to the real
server; each answer must not be a server error and must match the spec's schemas.
"""

from __future__ import annotations

import json
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis import checks
from schemathesis.schemas import APIOperation

from wyoming_whisper.http.docs import build_spec

from .harness import ServerProcess


def _spec(server: ServerProcess) -> dict:
    with urllib.request.urlopen(server.url + "/openapi.json", timeout=10) as resp:
        return json.loads(resp.read())


def test_openapi_spec_is_valid_and_complete(server: ServerProcess) -> None:
    spec = _spec(server)
    validate(spec)
    assert set(spec["paths"]) >= {
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
        "/v1/models",
        "/v1/models/{model}",
        "/v1/model/unload",
        "/health",
        "/ready",
    }


def test_docs_page_works_offline(server: ServerProcess) -> None:
    """/docs and every asset it loads come from the server itself: no CDN."""
    with urllib.request.urlopen(server.url + "/docs", timeout=10) as resp:
        page = resp.read().decode()
        assert resp.headers["Content-Type"].startswith("text/html")
    assets = ["/docs/assets/docs.js", "/docs/assets/docs.css"]
    for asset in assets:
        assert asset in page
        with urllib.request.urlopen(server.url + asset, timeout=10) as resp:
            body = resp.read().decode()
            assert resp.status == 200 and len(body) > 100
            assert "https://" not in body and "http://" not in body
    assert "https://" not in page and "http://" not in page


# schemathesis is driven through its Python API (operations -> Hypothesis strategies), not its
# pytest plugin: the plugin reaches into pytest's internals and breaks on pytest 9.
SCHEMA = schemathesis.openapi.from_dict(build_spec())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
CHECKS = [
    checks.not_a_server_error,
    checks.response_schema_conformance,
    checks.content_type_conformance,
    checks.status_code_conformance,
]


def test_spec_served_is_the_one_tested(server: ServerProcess) -> None:
    assert _spec(server) == build_spec()


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_server_errors(operation: APIOperation, server: ServerProcess) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        if case.path == "/v1/model/unload":
            # Unloading is legitimate but would make later requests reload models: keep it cheap.
            case.query = {"model": "not-a-served-model"}
        case.call_and_validate(base_url=server.url, timeout=60, checks=CHECKS)

    check()
