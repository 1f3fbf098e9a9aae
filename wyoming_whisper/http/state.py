"""Typed keys for what the app factory stores on the application."""

from aiohttp import web

from ..config import Config
from ..engine import Engine

ENGINE = web.AppKey("engine", Engine)
CONFIG = web.AppKey("config", Config)
