"""App factory: state, middlewares (errors in OpenAI's shape) and the route table."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from ..engine import Engine
from ..errors import OutOfMemory, Unauthorized, WhisperError, is_out_of_memory
from . import docs, openai, ops, stream, ui
from .state import CONFIG, ENGINE

_LOGGER = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_body(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> dict[str, dict[str, str | None]]:
    """OpenAI's error shape, which the openai SDK parses into its exceptions."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(err: WhisperError) -> web.Response:
    headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
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
    except Exception as exc:
        if is_out_of_memory(exc):  # the server's condition, not a bug: 503, try again later
            _LOGGER.error("Out of memory on %s %s: %s", request.method, request.path, exc)
            return error_response(OutOfMemory("the server is out of memory; retry later"))
        _LOGGER.exception("Unhandled error on %s %s", request.method, request.path)
        return web.json_response(
            error_body("Internal server error; see the server log", "server_error"), status=500
        )


def metrics_middleware(engine: Engine) -> Callable:
    """Count every answer by route template and status, and time it (outermost middleware)."""
    metrics = engine.metrics

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        route = "unmatched"
        resource = request.match_info.route.resource
        if resource is not None:
            route = resource.canonical
        status = "cancelled"  # the client went away before an answer
        try:
            response = await handler(request)
            status = str(response.status)
            return response
        except web.HTTPException as exc:
            status = str(exc.status)
            raise
        except asyncio.CancelledError:
            raise
        except Exception:
            status = "500"
            raise
        finally:
            metrics.requests.labels(route, status).inc()
            if route != "/metrics":
                metrics.request_seconds.labels(route).observe(time.monotonic() - started)

    return count


def _status_code(status: int) -> str | None:
    return {
        400: "bad_request",
        401: "invalid_api_key",
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
        415: "unsupported_media_type",
    }.get(status)


def auth_middleware(api_key: str) -> Callable:
    """With --api-key, every /v1 route wants ``Authorization: Bearer <key>``; /health stays open."""
    expected = api_key.encode()

    @web.middleware
    async def check_key(request: web.Request, handler: Handler) -> web.StreamResponse:
        # The WebSocket checks its key itself: browsers cannot set headers, so it also takes a
        # ``token`` query parameter, and its errors are WebSocket messages.
        guarded = request.path.startswith("/v1/") and request.path != stream.PATH
        if guarded and request.method != "OPTIONS":
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not given.strip():
                raise Unauthorized(
                    "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
                )
            if not hmac.compare_digest(given.strip().encode(), expected):
                raise Unauthorized("Incorrect API key provided.")
        return await handler(request)

    return check_key


CORS_METHODS = "GET, POST, OPTIONS"


@dataclass(frozen=True)
class Cors:
    """Lets browser pages on ``origins`` ('*' for any) call the API, preflight included."""

    origins: tuple[str, ...]

    def allowed(self, request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if not origin:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    @web.middleware
    async def preflight(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        allow = self.allowed(request)
        if (
            allow
            and request.method == "OPTIONS"
            and "Access-Control-Request-Method" in (request.headers)
        ):
            requested = request.headers.get("Access-Control-Request-Headers", "")
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Methods": CORS_METHODS,
                    "Access-Control-Allow-Headers": requested or "Authorization, Content-Type",
                    "Access-Control-Max-Age": "600",
                },
            )
        return await handler(request)

    async def add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """on_response_prepare: every answer (errors and event streams too) gets the headers."""
        allow = self.allowed(request)
        if allow:
            response.headers["Access-Control-Allow-Origin"] = allow
            response.headers["Vary"] = "Origin"


def create_app(engine: Engine) -> web.Application:
    """Build the HTTP app around an engine; the routes of each module are added here.

    Middlewares, outermost first: metrics, CORS preflight (no key needed), errors, API key.
    """
    config = engine.config
    middlewares: list[Callable] = [metrics_middleware(engine)]
    cors = Cors(config.cors_origins) if config.cors_origins else None
    if cors is not None:
        middlewares.append(cors.preflight)
    middlewares.append(error_middleware)
    if config.api_key:
        middlewares.append(auth_middleware(config.api_key))
    app = web.Application(
        middlewares=middlewares,
        client_max_size=int(config.max_upload_mb * 1024 * 1024),
    )
    if cors is not None:
        app.on_response_prepare.append(cors.add_headers)
    app[ENGINE] = engine
    app[CONFIG] = config
    app.add_routes(ops.routes)
    app.add_routes(openai.routes)
    app.add_routes(docs.routes)
    app.add_routes(stream.routes)
    app.add_routes(ui.routes)
    return app
