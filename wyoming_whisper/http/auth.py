"""The API key (--api-key): the one place a request's key is read and compared, for every route
and both WebSockets, so the same fault gets the same answer on each."""

from __future__ import annotations

import hmac

from aiohttp import web

from ..errors import Unauthorized

# Browsers cannot set headers on a WebSocket: the Realtime door takes the key as a subprotocol.
KEY_PROTOCOL = "openai-insecure-api-key."


def bearer_token(request: web.Request) -> str:
    """The key of ``Authorization: Bearer <key>`` ('' without one)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else ""


def _offered_key(request: web.Request) -> str:
    offered = request.headers.get("Sec-WebSocket-Protocol", "").split(",")
    keys = (p.strip()[len(KEY_PROTOCOL) :] for p in offered if p.strip().startswith(KEY_PROTOCOL))
    return next(keys, "")


def check_key(
    request: web.Request, key: str, *, query: bool = False, protocol: bool = False
) -> None:
    """Unauthorized unless the request carries ``key`` as ``Authorization: Bearer`` or, where
    the door allows it (a browser's WebSocket), as a ``token`` query parameter (``query``) or
    the ``openai-insecure-api-key.<key>`` subprotocol (``protocol``)."""
    given = bearer_token(request)
    ways = ["'Authorization: Bearer <key>'"]
    if query:
        given = given or request.query.get("token", "").strip()
        ways.append("the query parameter 'token=<key>'")
    if protocol:
        given = given or _offered_key(request)
        ways.append(f"the subprotocol '{KEY_PROTOCOL}<key>'")
    if not given:
        raise Unauthorized(f"You didn't provide an API key. Send it as {' or '.join(ways)}.")
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise Unauthorized("Incorrect API key provided.")
