"""``/v1/models``, ``/v1/models/{model}`` and ``/v1/model/unload``: the served models, their
states, and unloading one or all.

Unload names a model, not a transcription: it has no ``TranscriptionRequest`` to build, so its
one field is checked here (a string, mapped by ``Engine.model_name`` as every door maps it).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ...engine import Engine
from ...errors import InvalidRequest, ModelNotFound, TooLarge
from ...languages import model_languages
from ...request import parse_json
from ..state import ENGINE
from .upload import within

routes = web.RouteTableDef()

MAX_SMALL_BODY = 64 * 1024  # unload's body names a model: not the upload limit
STARTED = int(time.time())


async def _small_body(request: web.Request, engine: Engine) -> Any:
    """A small JSON or form body: at most MAX_SMALL_BODY bytes (413, told by Content-Length or
    found while reading), within --http-read-timeout (408), never the upload limit."""
    too_large = TooLarge(f"the body is larger than {MAX_SMALL_BODY // 1024} KiB")
    if request.content_length is not None and request.content_length > MAX_SMALL_BODY:
        raise too_large
    small = request.clone(client_max_size=MAX_SMALL_BODY)
    body: Any
    try:
        if request.content_type == "application/json":
            try:
                body = await within(engine, small.json(loads=parse_json))
            except ValueError:
                raise InvalidRequest("the body is not valid JSON", code="invalid_body") from None
            if not isinstance(body, dict):
                raise InvalidRequest("the body must be a JSON object", code="invalid_body")
        elif request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            try:
                body = await within(engine, small.post())
            except (ValueError, AssertionError, LookupError, HttpProcessingError):
                raise InvalidRequest("malformed form body", code="invalid_body") from None
        else:
            raise web.HTTPUnsupportedMediaType(
                text='send the model as JSON {"model": ...}, a form field or ?model='
            )
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    return body


def _model_entry(engine: Engine, status: dict[str, Any]) -> dict[str, Any]:
    name = status["name"]
    return {
        "id": name,
        "object": "model",
        "created": STARTED,
        "owned_by": "wyoming-whisper",
        "state": status["state"],
        "default": name == engine.config.default_model,
        "multilingual": model_languages(name) != ["en"],
    }


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    data = [_model_entry(engine, s) for s in engine.model_status()]
    return web.json_response({"object": "list", "data": data})


@routes.get("/v1/models/{model:.+}")
async def get_model(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    requested = request.match_info["model"]
    try:
        name = engine.model_name(requested)
    except ModelNotFound as err:
        raise web.HTTPNotFound(text=err.message) from None
    (status,) = engine.model_status(name)
    return web.json_response(_model_entry(engine, status))


@routes.post("/v1/model/unload")
async def unload(request: web.Request) -> web.Response:
    """Unload one model (JSON or form field ``model``, or ?model=) or, without a name, all."""
    engine = request.app[ENGINE]
    requested = request.query.get("model")
    if requested is None and request.body_exists:
        body = await _small_body(request, engine)
        requested = body.get("model")
        if requested is not None and not isinstance(requested, str):
            raise InvalidRequest("model must be a string", param="model", code="invalid_value")
    name = None if requested in (None, "", "all") else engine.model_name(requested)
    unloaded = await engine.unload(name)
    statuses = engine.model_status(name)
    body = {
        "status": "success",
        "unloaded": unloaded,
        "models": [_model_entry(engine, s) for s in statuses],
    }
    if name is not None:  # the single-model shape other Whisper servers answer with
        body.update(model=name, was_loaded=name in unloaded)
    return web.json_response(body)
