"""App factory: state, middlewares (errors in OpenAI's shape) and the route table."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from ..config import Config
from ..engine import Engine
from ..errors import Forbidden
from . import docs, openai, ops, realtime, ui, websocket
from .auth import check_key
from .errors import error_middleware
from .state import ENGINE

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

    @web.middleware
    async def keyed(request: web.Request, handler: Handler) -> web.StreamResponse:
        guarded = request.path.startswith("/v1/") and request.path not in SELF_CHECKED
        if guarded and request.method != "OPTIONS":
            check_key(request, api_key)
        return await handler(request)

    return keyed


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


# The Home Assistant Supervisor's ingress proxy: the add-on's page reaches the server from this
# address with an X-Ingress-Path header, carrying Home Assistant's Origin (HA checked the user).
INGRESS_PROXY = "172.30.32.2"
# Names only a home network resolves: a public DNS name cannot be rebound onto them.
LOCAL_SUFFIXES = (".local", ".home.arpa", ".internal", ".lan", ".localhost")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
UNLOAD_PATH = "/v1/model/unload"


def _origin(text: str) -> str:
    return text.strip().rstrip("/").lower()


def _netloc(origin: str) -> str:
    """The host:port of an Origin ('' for 'null' or one that is not a URL)."""
    try:
        return urlsplit(_origin(origin)).netloc
    except ValueError:  # an unclosed IPv6 bracket
        return ""


def _authority(netloc: str) -> str:
    """host:port compared without the scheme: a default port is the same as none."""
    netloc = netloc.strip().lower().rstrip(".")
    for default in (":80", ":443"):
        if netloc.endswith(default):
            return netloc[: -len(default)]
    return netloc


@dataclass(frozen=True)
class BrowserGuard:
    """Keeps web pages of other sites away from what changes state (issue 24, case 7).

    A browser sends ``Origin`` on every POST and WebSocket handshake (curl, SDKs and Home
    Assistant send none), and a page may POST a "simple request" or open a WebSocket to any
    address without asking first. Such a request is refused unless its Origin is this server's
    own (same host:port as ``Host``) or allowed by --cors-origins. A same-origin request must
    also name the server by a name a public DNS name cannot be rebound onto (an IP literal,
    localhost, a single label, a home-network suffix, this machine's name, a --cors-origins
    host), so a rebound page (``Host: evil.example:10301``) is refused too.
    """

    origins: tuple[str, ...]
    hosts: frozenset[str]  # names of this server besides the always-local ones

    @classmethod
    def of(cls, config: Config) -> BrowserGuard:
        """This machine's name, --host and the --cors-origins hosts are trusted names too."""
        names = {socket.gethostname().lower(), config.host.lower()}
        names |= {urlsplit(o).hostname or "" for o in config.cors_origins}
        return cls(tuple(_origin(o) for o in config.cors_origins), frozenset(names - {""}))

    def trusted_host(self, host: str) -> bool:
        """A name no public DNS name can be rebound onto (see the class)."""
        try:
            name = (urlsplit("//" + host).hostname or "").rstrip(".")
        except ValueError:  # an unclosed IPv6 bracket
            return False
        if not name:
            return False
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            pass
        return (
            name == "localhost"
            or "." not in name
            or name.endswith(LOCAL_SUFFIXES)
            or name in self.hosts
        )

    def refusal(
        self, method: str, path: str, headers: Mapping[str, str], remote: str | None
    ) -> str | None:
        """Why this request is refused, or None: the whole rule, pure, for the middleware."""
        origin = headers.get("Origin")
        websocket = headers.get("Upgrade", "").lower() == "websocket"
        if origin is None or (method in SAFE_METHODS and not websocket):
            return None
        ingress = remote == INGRESS_PROXY and "X-Ingress-Path" in headers
        allowed = "*" in self.origins or _origin(origin) in self.origins
        if not (ingress or allowed):
            host = headers.get("Host", "")
            if _authority(_netloc(origin)) != _authority(host):
                return (
                    f"a web page from origin '{origin}' may not call this server; "
                    f"start it with --cors-origins {origin} to allow that origin"
                )
            if not self.trusted_host(host):
                return (
                    f"a web page may not call this server by the name '{host}' (a public name "
                    "could be pointed at it by another site); use its address or local name, "
                    f"or start it with --cors-origins {origin}"
                )
        if method == "POST" and path == UNLOAD_PATH and not _preflighted(headers):
            return (
                "from a browser, POST /v1/model/unload needs 'Content-Type: application/json' "
                "(or an Authorization header), which a page of another site cannot send "
                "without the server's leave"
            )
        return None

    @web.middleware
    async def check(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        reason = self.refusal(request.method, request.path, request.headers, request.remote)
        if reason is not None:
            # DEBUG: a page could send these in a loop; the browser shows the reason anyway.
            _LOGGER.debug(
                "Refused %s %s from %s: %s", request.method, request.path, request.remote, reason
            )
            raise Forbidden(reason)
        return await handler(request)


def _preflighted(headers: Mapping[str, str]) -> bool:
    """A request a browser sends only after a CORS preflight (JSON body or Authorization)."""
    kind = headers.get("Content-Type", "").partition(";")[0].strip().lower()
    return kind == "application/json" or "Authorization" in headers


def create_app(engine: Engine) -> web.Application:
    """Build the HTTP app around an engine; the routes of each module are added here.

    Middlewares, outermost first: metrics, CORS preflight (no key needed), errors, browser
    guard (Origin and Host), API key.
    """
    config = engine.config
    middlewares: list[Callable] = [metrics_middleware(engine)]
    cors = Cors(config.cors_origins) if config.cors_origins else None
    if cors is not None:
        middlewares.append(cors.preflight)
    middlewares.append(error_middleware)
    middlewares.append(BrowserGuard.of(config).check)
    if config.api_key:
        middlewares.append(auth_middleware(config.api_key))
    app = web.Application(
        middlewares=middlewares,
        client_max_size=int(config.max_upload_mb * 1024 * 1024),
    )
    if cors is not None:
        app.on_response_prepare.append(cors.add_headers)
    app[ENGINE] = engine
    app.add_routes(ops.routes)
    app.add_routes(openai.routes)
    app.add_routes(docs.routes)
    app.add_routes(websocket.routes)
    app.add_routes(realtime.routes)
    app.add_routes(ui.routes)
    return app
