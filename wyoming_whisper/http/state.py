"""Typed keys for what the app factory stores on the application: the engine (its ``config``
is the one the server started with)."""

from aiohttp import web

from ..engine import Engine

ENGINE = web.AppKey("engine", Engine)
