"""GET /openapi.json (the HTTP API as OpenAPI 3.1) and GET /docs, a page served from the package.

The spec is written here by hand, next to the routes it describes; a test validates it and runs
schemathesis against a live server with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from .. import __version__
from ..admission import NOT_READY
from ..formats import RESPONSE_FORMATS

routes = web.RouteTableDef()
STATIC_DIR = Path(__file__).parent / "static"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error_responses(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Invalid request: bad audio, unknown model, bad parameter",
        401: "Missing or wrong API key (only with --api-key)",
        403: "A browser page of another origin, or a rebound host name (see --cors-origins)",
        404: "Unknown route or model",
        408: "The request body stopped arriving for --http-read-timeout",
        413: "Upload larger than --max-upload-mb, or audio longer than --max-audio-seconds",
        415: "Body is not multipart/form-data",
        503: "Queue full or every connection busy (Retry-After), or model cannot be loaded",
    }
    return {
        str(s): {
            "description": text[s],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for s in statuses
    }


def _audio_form(translation: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "Audio in any container FFmpeg decodes: wav, mp3, flac, ogg/opus, "
            "m4a, webm, ...; any sample rate and channel count.",
        },
        "model": {
            "type": "string",
            "description": "'whisper-1' (or another OpenAI transcription model name) for the "
            "default model, or the name of a served model (see GET /v1/models).",
            "examples": ["whisper-1"],
        },
        "prompt": {
            "type": "string",
            "description": "Text to guide style or continue a previous segment (initial prompt).",
        },
        "response_format": {
            "type": "string",
            "enum": list(RESPONSE_FORMATS),
            "default": "json",
        },
        "temperature": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "default": 0,
            "description": "0: Whisper's fallback schedule 0.0, 0.2, ... 1.0; otherwise the "
            "single sampling temperature.",
        },
        "stream": {
            "type": "boolean",
            "default": False,
            "description": "Answer with server-sent events: transcript.text.delta per decoded "
            "segment, then transcript.text.done.",
        },
    }
    properties["language"] = {
        "type": "string",
        "description": "ISO-639-1 code of the spoken language (e.g. 'en'); detected if absent."
        + (" An extension for translations: it skips detection." if translation else ""),
    }
    if not translation:
        properties["timestamp_granularities[]"] = {
            "type": "array",
            "items": {"type": "string", "enum": ["word", "segment"]},
            "description": "With verbose_json: 'word' adds a words list, 'segment' the segments "
            "(the default).",
        }
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "model"],
                    "properties": properties,
                },
                "encoding": {"timestamp_granularities[]": {"style": "form", "explode": True}}
                if not translation
                else {},
            }
        },
    }


def _audio_operation(translation: bool) -> dict[str, Any]:
    verb = "Translate audio into English" if translation else "Transcribe audio"
    return {
        "operationId": "createTranslation" if translation else "createTranscription",
        "tags": ["Audio"],
        "summary": verb,
        "requestBody": _audio_form(translation),
        "responses": {
            "200": {
                "description": "json, verbose_json; text, srt and vtt as text/plain; with "
                "stream=true, text/event-stream",
                "content": {
                    "application/json": {
                        "schema": {"anyOf": [_ref("Transcription"), _ref("TranscriptionVerbose")]}
                    },
                    "text/plain": {"schema": {"type": "string"}},
                    "text/event-stream": {
                        "schema": {
                            "type": "string",
                            "description": "data: {TranscriptTextDelta} ... then data: "
                            "{TranscriptTextDone}",
                        }
                    },
                },
            },
            **_error_responses(400, 401, 403, 408, 413, 415, 503),
        },
    }


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def build_spec() -> dict[str, Any]:
    """The whole HTTP API (OpenAPI 3.1)."""
    number = {"type": "number"}
    string = {"type": "string"}
    integer = {"type": "integer"}
    nullable_string = {"type": ["string", "null"]}
    nullable_number = {"type": ["number", "null"]}
    boolean = {"type": "boolean"}
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message", "type", "param", "code"],
                    "properties": {
                        "message": string,
                        "type": string,
                        "param": nullable_string,
                        "code": nullable_string,
                    },
                }
            },
        },
        "Usage": {
            "type": "object",
            "required": ["type", "seconds"],
            "properties": {"type": {"const": "duration"}, "seconds": number},
        },
        "Transcription": {
            "type": "object",
            "required": ["text"],
            "properties": {"text": string, "usage": _ref("Usage")},
        },
        "TranscriptionSegment": {
            "type": "object",
            "required": [
                "id",
                "seek",
                "start",
                "end",
                "text",
                "tokens",
                "temperature",
                "avg_logprob",
                "compression_ratio",
                "no_speech_prob",
            ],
            "properties": {
                "id": integer,
                "seek": integer,
                "start": number,
                "end": number,
                "text": string,
                "tokens": {"type": "array", "items": integer},
                "temperature": number,
                "avg_logprob": number,
                "compression_ratio": number,
                "no_speech_prob": number,
            },
        },
        "TranscriptionWord": {
            "type": "object",
            "required": ["word", "start", "end"],
            "properties": {"word": string, "start": number, "end": number},
        },
        "TranscriptionVerbose": {
            "type": "object",
            "required": ["task", "language", "duration", "text"],
            "properties": {
                "task": {"type": "string", "enum": ["transcribe", "translate"]},
                "language": {
                    "type": "string",
                    "description": "Full lower-case name, e.g. 'english'",
                },
                "duration": number,
                "text": string,
                "segments": {"type": "array", "items": _ref("TranscriptionSegment")},
                "words": {"type": "array", "items": _ref("TranscriptionWord")},
                "usage": _ref("Usage"),
            },
        },
        "TranscriptTextDelta": {
            "type": "object",
            "required": ["type", "delta"],
            "properties": {"type": {"const": "transcript.text.delta"}, "delta": string},
        },
        "TranscriptTextDone": {
            "type": "object",
            "required": ["type", "text"],
            "properties": {
                "type": {"const": "transcript.text.done"},
                "text": string,
            },
        },
        "Model": {
            "type": "object",
            "required": ["id", "object", "created", "owned_by", "state"],
            "properties": {
                "id": string,
                "object": {"const": "model"},
                "created": integer,
                "owned_by": string,
                "state": {"type": "string", "enum": ["unloaded", "loading", "loaded", "error"]},
                "default": {"type": "boolean"},
                "multilingual": {"type": "boolean"},
            },
        },
        "ModelList": {
            "type": "object",
            "required": ["object", "data"],
            "properties": {
                "object": {"const": "list"},
                "data": {"type": "array", "items": _ref("Model")},
            },
        },
        "UnloadRequest": {
            "type": "object",
            "properties": {
                "model": {
                    "type": "string",
                    "description": "A served model's name; absent or 'all' unloads every model",
                }
            },
        },
        "UnloadResult": {
            "type": "object",
            "required": ["status", "unloaded", "models"],
            "properties": {
                "status": {"type": "string", "enum": ["success"]},
                "unloaded": {"type": "array", "items": string},
                "models": {"type": "array", "items": _ref("Model")},
                "model": {**string, "description": "The model named, when one was"},
                "was_loaded": {
                    "type": "boolean",
                    "description": "It was loaded and is now unloaded (a decoding model is "
                    "unloaded when its last request ends; /health shows unload_pending)",
                },
            },
        },
        "ModelStatus": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "state", "loaded", "ttl", "ttl_seconds", "queue_depth"],
            "properties": {
                "name": string,
                "state": {"type": "string", "enum": ["unloaded", "loading", "loaded", "error"]},
                "loaded": boolean,
                "unload_pending": boolean,
                "ttl": {**number, "description": "Idle seconds before unloading (0: never)"},
                "ttl_seconds": {
                    **number,
                    "description": "The same, as the reference server names it",
                },
                "seconds_until_unload": nullable_number,
                "last_used": nullable_number,
                "load_seconds": nullable_number,
                "active_requests": integer,
                "loads": integer,
                "error": nullable_string,
                "queue_depth": {**integer, "description": "Requests admitted (running or queued)"},
            },
        },
        "Health": {
            "type": "object",
            "additionalProperties": False,
            "required": ["status", "version", "backend", "device", "models"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "loading", "degraded"]},
                "version": string,
                "backend": {"type": "string", "enum": ["faster-whisper", "mlx"]},
                "device": string,
                "compute_type": string,
                "default_model": string,
                "models": {"type": "array", "items": _ref("ModelStatus")},
                "encoder_window": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "mode": {"type": "string", "enum": ["auto", "full"]},
                        "fallbacks": integer,
                    },
                },
                "hass_names": {
                    "type": ["object", "null"],
                    "description": "Names read from Home Assistant (null when not configured)",
                    "additionalProperties": False,
                    "properties": {
                        "source": {"type": "string", "enum": ["supervisor", "url"]},
                        "names": integer,
                        "connected": boolean,
                        "stale": boolean,
                        "last_refresh": nullable_number,
                        "last_error": nullable_string,
                    },
                },
                "assist_commands": {
                    "type": "object",
                    "description": "The step that answers the Home Assistant command a "
                    "transcript nearly is (docs/commands.md)",
                    "additionalProperties": False,
                    "properties": {
                        "enabled": boolean,
                        "sentences": {
                            "type": "object",
                            "description": "Home Assistant's sentences per language asked for "
                            "(until loaded, transcripts go out as heard)",
                            "additionalProperties": {
                                "type": "string",
                                "enum": ["loaded", "loading", "none"],
                            },
                        },
                    },
                },
                "streaming": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "early_decodes": integer,
                        "early_hits": integer,
                        "partials": integer,
                    },
                },
            },
        },
        "Ready": {
            "type": "object",
            "additionalProperties": False,
            "required": ["ready", "reason", "model", "queue_depth", "capacity"],
            "properties": {
                "ready": boolean,
                "reason": {
                    "type": "string",
                    "enum": ["ready", *NOT_READY],
                    "description": "ready; or why not: draining (after SIGTERM), starting (ports "
                    "not all open), loading (the default model's first load), model_error (its "
                    "last load failed), busy (its queue is full)",
                },
                "model": {**string, "description": "The default model"},
                "queue_depth": {
                    **integer,
                    "description": "The default model's requests in flight (running or queued)",
                },
                "capacity": {
                    **integer,
                    "description": "In flight at which new requests get 503 (workers + queue)",
                },
            },
        },
    }
    for name in (
        "Error",
        "Usage",
        "Transcription",
        "TranscriptionSegment",
        "TranscriptionWord",
        "TranscriptionVerbose",
        "Model",
        "ModelList",
        "UnloadResult",
    ):
        schemas[name]["additionalProperties"] = False  # a field the handlers add is documented
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    paths: dict[str, Any] = {
        "/v1/audio/transcriptions": {"post": {**_audio_operation(False), "security": security}},
        "/v1/audio/translations": {"post": {**_audio_operation(True), "security": security}},
        "/v1/models": {
            "get": {
                "operationId": "listModels",
                "tags": ["Models"],
                "summary": "The served models and whether each is loaded",
                "security": security,
                "responses": {"200": _json(_ref("ModelList")), **_error_responses(401)},
            }
        },
        "/v1/models/{model}": {
            "get": {
                "operationId": "retrieveModel",
                "tags": ["Models"],
                "summary": "One served model",
                "security": security,
                "parameters": [{"name": "model", "in": "path", "required": True, "schema": string}],
                "responses": {"200": _json(_ref("Model")), **_error_responses(401, 404)},
            }
        },
        "/v1/model/unload": {
            "post": {
                "operationId": "unloadModel",
                "tags": ["Models"],
                "summary": "Unload one model, or all, from memory now",
                "security": security,
                "parameters": [
                    {
                        "name": "model",
                        "in": "query",
                        "required": False,
                        "schema": string,
                        "description": "The model to unload, instead of a body",
                    }
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        media: {"schema": _ref("UnloadRequest")}
                        for media in (
                            "application/json",
                            "multipart/form-data",
                            "application/x-www-form-urlencoded",
                        )
                    },
                },
                "responses": {
                    "200": _json(_ref("UnloadResult")),
                    **_error_responses(400, 401, 403, 408, 413, 415),
                },
            }
        },
        "/v1/realtime": {
            "get": {
                "operationId": "realtimeTranscription",
                "tags": ["Audio"],
                "summary": "The Realtime API's transcription sessions (a WebSocket of JSON events)",
                "description": (
                    "Upgrade to a WebSocket. Client events: session.update (session.type "
                    "'transcription') or the beta transcription_session.update; "
                    "input_audio_buffer.append (base64, at most 15 MiB), .commit, .clear. Server "
                    "events: session.created/updated, input_audio_buffer.speech_started, "
                    ".speech_stopped, .committed, .cleared, conversation.item.added, "
                    "conversation.item.input_audio_transcription.delta (confirmed words during "
                    "speech), .completed (with usage), .failed, and error. The API key, when "
                    "set, as Authorization: Bearer or the subprotocol "
                    "openai-insecure-api-key.<key>. See docs/http-api.md."
                ),
                "security": [*security, {}],
                "parameters": [
                    {
                        "name": "intent",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["transcription"]},
                        "description": "Only transcription sessions are served",
                    }
                ],
                "responses": {
                    "101": {"description": "Switching Protocols: the session's WebSocket"},
                    **_error_responses(400, 403),
                },
            }
        },
        "/health": {
            "get": {
                "operationId": "health",
                "tags": ["Operations"],
                "summary": "Server and model status (never needs the API key)",
                "responses": {"200": _json(_ref("Health"))},
            }
        },
        "/ready": {
            "get": {
                "operationId": "ready",
                "tags": ["Operations"],
                "summary": "Readiness for load balancers: 200 when this server takes new work "
                "(never needs the API key)",
                "responses": {
                    "200": _json(_ref("Ready"), "The default model is loaded, work is admitted"),
                    "503": _json(
                        _ref("Ready"),
                        "Not ready: starting, loading, model error, queue full or draining",
                    ),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "wyoming-whisper",
            "version": __version__,
            "description": "Local Whisper speech-to-text with OpenAI's audio API. Point an "
            "OpenAI client at http://host:10301/v1.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Only when the server runs with --api-key",
                }
            },
        },
    }


SPEC = build_spec()


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(SPEC)


@routes.get("/docs")
async def docs(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "docs.html")


routes.static("/docs/assets", STATIC_DIR)
