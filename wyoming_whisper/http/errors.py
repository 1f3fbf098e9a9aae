"""Errors as HTTP answers: OpenAI's error body, and the middleware that writes every one of them.

Handlers only raise (``errors.*`` or aiohttp's HTTP exceptions); the same body is also sent in-band
by the server-sent events of a transcription that fails mid-answer. (The API key a 401 is about
is read in auth.py.)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..errors import INTERNAL_MESSAGE, OutOfMemory, WhisperError, is_out_of_memory

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
            error_body(message or exc.reason, kind, code=status_code(exc.status)),
            status=exc.status,
            headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
        )
    except Exception as exc:
        if is_out_of_memory(exc):  # the server's condition, not a bug: 503, try again later
            _LOGGER.error("Out of memory on %s %s: %s", request.method, request.path, exc)
            return error_response(OutOfMemory("the server is out of memory; retry later"))
        _LOGGER.exception("Unhandled error on %s %s", request.method, request.path)
        return web.json_response(error_body(INTERNAL_MESSAGE, "server_error"), status=500)


def status_code(status: int) -> str | None:
    return {
        400: "bad_request",
        401: "invalid_api_key",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        408: "timeout",  # a body that stopped arriving, as Wyoming names its idle fault
        413: "too_large",
        415: "unsupported_media_type",
    }.get(status)
