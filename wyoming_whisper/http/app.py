"""App factory: state, middlewares (errors in OpenAI's shape) and the route table."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..engine import Engine
from ..errors import Busy, WhisperError
from . import ops, stream
from .state import CONFIG, ENGINE

_LOGGER = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_body(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> dict[str, dict[str, str | None]]:
    """OpenAI's error shape, which the openai SDK parses into its exceptions."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(err: WhisperError) -> web.Response:
    headers = {"Retry-After": str(err.retry_after)} if isinstance(err, Busy) else None
    return web.json_response(
        error_body(err.message, err.type, param=err.param, code=err.code),
        status=err.status,
        headers=headers,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place errors become responses: our faults, aiohttp's, and unexpected ones."""
    try:
        return await handler(request)
    except WhisperError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = "server_error" if exc.status >= 500 else "invalid_request_error"
        message = exc.text if exc.text and exc.text != exc.reason else exc.reason
        if exc.status == 404:
            message = f"Unknown route {request.method} {request.path}"
        elif exc.status == 405:
            message = f"Method {request.method} is not allowed on {request.path}"
        return web.json_response(
            error_body(message or exc.reason, kind, code=_status_code(exc.status)),
            status=exc.status,
            headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
        )
    except Exception:
        _LOGGER.exception("Unhandled error on %s %s", request.method, request.path)
        return web.json_response(
            error_body("Internal server error; see the server log", "server_error"), status=500
        )


def _status_code(status: int) -> str | None:
    return {
        400: "bad_request",
        401: "invalid_api_key",
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
        415: "unsupported_media_type",
    }.get(status)


def create_app(engine: Engine) -> web.Application:
    """Build the HTTP app around an engine; the routes of each module are added here."""
    app = web.Application(
        middlewares=[error_middleware],
        client_max_size=int(engine.config.max_upload_mb * 1024 * 1024),
    )
    app[ENGINE] = engine
    app[CONFIG] = engine.config
    app.add_routes(ops.routes)
    app.add_routes(stream.routes)
    return app
