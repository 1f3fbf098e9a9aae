"""OpenAI's Realtime API, transcription sessions: ``GET /v1/realtime?intent=transcription``.

A WebSocket of JSON events (docs/http-api.md). The client configures the session
(``session.update`` with ``session.type: "transcription"``, or the older beta
``transcription_session.update``), appends base64 audio, and either the server's VAD or the
client's ``commit`` ends each item; the server answers with deltas, transcripts and ``error``
events in the Realtime API's shape.

Three parts: ``settings`` parses the session's configuration (pure), ``session`` is the state
machine of one connection, ``route`` is the aiohttp WebSocket route that drives it.
"""

from .route import PATH, realtime, routes

__all__ = ["PATH", "realtime", "routes"]
