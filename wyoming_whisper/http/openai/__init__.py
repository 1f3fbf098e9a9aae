"""OpenAI's audio API: transcriptions, translations (plain or server-sent events), models, unload.

Uploads are streamed to a temporary file as they arrive and refused with 413 the moment they pass
--max-upload-mb; decoding and inference run on the engine's worker pool. Handlers only raise
(errors.* or aiohttp's HTTP exceptions): the error middleware in app.py writes every error body.

By concern: ``upload`` reads the multipart form into a spool file, ``spool`` names, deletes and
sweeps those files, ``transcription`` is the two audio routes and their answer, ``events`` that
answer as server-sent events, ``models`` the model list and unload routes.
"""

from __future__ import annotations

from aiohttp import web

from . import models, transcription
from .spool import sweep_uploads

routes: tuple[web.AbstractRouteDef, ...] = (*transcription.routes, *models.routes)

__all__ = ["routes", "sweep_uploads"]
