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
from ..errors import Unauthorized
from . import docs, openai, ops, realtime, ui, websocket
from .errors import bearer_token, error_middleware
from .state import CONFIG, ENGINE

_LOGGER = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


# The WebSockets check their key themselves: browsers cannot set headers, so they send the key
# another way, and their errors are WebSocket messages.
SELF_CHECKED = frozenset({websocket.PATH, realtime.PATH})


def auth_middleware(api_key: str) -> Callable:
    """With --api-key, every /v1 route wants ``Authorization: Bearer <key>``; /health stays open."""
    expected = api_key.encode()

    @web.middleware
    async def check_key(request: web.Request, handler: Handler) -> web.StreamResponse:
        guarded = request.path.startswith("/v1/") and request.path not in SELF_CHECKED
        if guarded and request.method != "OPTIONS":
            given = bearer_token(request)
            if not given:
                raise Unauthorized(
                    "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
                )
            if not hmac.compare_digest(given.encode(), expected):
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
    app.add_routes(websocket.routes)
    app.add_routes(realtime.routes)
    app.add_routes(ui.routes)
    return app
