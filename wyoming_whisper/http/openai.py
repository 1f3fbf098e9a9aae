"""OpenAI's audio API: transcriptions, translations (plain or server-sent events), models, unload.

Uploads are streamed to a temporary file as they arrive and refused with 413 the moment they pass
--max-upload-mb; decoding and inference run on the engine's worker pool. Handlers only raise
(errors.* or aiohttp's HTTP exceptions): the error middleware in app.py writes every error body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..backends.base import Segment
from ..engine import Engine
from ..errors import (
    INTERNAL_MESSAGE,
    BadAudio,
    InvalidRequest,
    ModelNotFound,
    TooLarge,
    WhisperError,
)
from ..formats import render
from ..languages import model_languages
from ..request import (
    Task,
    TranscriptionRequest,
    build_request,
    decode_options,
    parse_bool,
    parse_json,
    require_model,
)
from .errors import error_body
from .state import ENGINE

_LOGGER = logging.getLogger(__name__)
routes = web.RouteTableDef()
T = TypeVar("T")

CHUNK_SIZE = 256 * 1024
MAX_FIELD_BYTES = 64 * 1024  # a prompt is at most a few hundred tokens
MAX_SMALL_BODY = 64 * 1024  # unload's body names a model: not the upload limit
UPLOAD_PREFIX = "whisper-upload-"  # spooled uploads: whisper-upload-<pid>-<random>, no suffix
STARTED = int(time.time())


@dataclass
class AudioForm:
    """The multipart fields of a transcription or translation request, as sent."""

    fields: dict[str, str] = field(default_factory=dict)
    granularities: list[str] = field(default_factory=list)
    path: str | None = None
    size: int = 0
    admitted: str | None = None  # the model whose queue place the upload holds


TEXT_ONLY = ("json", "text")  # formats without segments: a command may replace their text


# -- parsing and validation -------------------------------------------------------------------


def validate(engine: Engine, form: AudioForm, task: Task) -> tuple[TranscriptionRequest, bool]:
    """The request the form describes (request.py checks it) and whether to answer as SSE."""
    fields = form.fields
    req = build_request(
        engine,
        model=require_model(fields.get("model")),
        task=task,
        language=fields.get("language"),
        prompt=fields.get("prompt"),
        temperature=fields.get("temperature"),
        granularities=form.granularities,
        response_format=fields.get("response_format"),
        hotwords=engine.assist.prompt_names() if engine.config.hass_names_for_http else (),
    )
    return req, parse_bool(fields.get("stream"), "stream")


def _limit_bytes(engine: Engine) -> int:
    return int(engine.config.max_upload_mb * 1024 * 1024)


def _too_large(engine: Engine) -> TooLarge:
    return TooLarge(
        f"the upload is larger than this server's limit of {engine.config.max_upload_mb:g} MB",
        param="file",
    )


def _stalled(engine: Engine) -> web.HTTPRequestTimeout:
    return web.HTTPRequestTimeout(
        text=f"the request body stopped arriving for {engine.config.http_read_timeout:g} s"
    )


async def _within(engine: Engine, read: Awaitable[T]) -> T:
    """One read of a request body, given --http-read-timeout: a client that stops sending holds
    its connection (and its queue place) no longer; 408."""
    try:
        async with asyncio.timeout(engine.config.http_read_timeout):
            return await read
    except TimeoutError:
        raise _stalled(engine) from None


async def _read_field(engine: Engine, part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await _within(engine, part.read_chunk(8192)):
        data.extend(chunk)
        if len(data) > MAX_FIELD_BYTES:
            raise InvalidRequest(
                f"form field {part.name!r} is longer than {MAX_FIELD_BYTES} bytes",
                param=part.name,
                code="invalid_value",
            )
    try:
        return data.decode(part.get_charset(default="utf-8"))
    except (UnicodeDecodeError, LookupError):
        raise InvalidRequest(
            f"form field {part.name!r} is not valid text", param=part.name, code="invalid_value"
        ) from None


async def _save_file(engine: Engine, part: BodyPartReader, form: AudioForm, limit: int) -> None:
    """Write the file part to disk chunk by chunk (off the loop), stopping as soon as it passes
    the limit.

    The name is the server's own: the client's suffix would choose FFmpeg's reader (``.m3u8``
    is a playlist that opens other files); the content alone says what the upload is.
    """
    fd, path = await engine.run_audio(tempfile.mkstemp, "", _spool_prefix())
    form.path = path
    out = os.fdopen(fd, "wb")
    try:
        while chunk := await _within(engine, part.read_chunk(CHUNK_SIZE)):
            form.size += len(chunk)
            if form.size > limit:
                raise TooLarge("")
            await engine.run_audio(out.write, chunk)
    finally:
        out.close()  # large chunks bypass the 8 KiB buffer: at most a small tail to flush


def _spool_prefix() -> str:
    """Each process's uploads carry its pid, so a starting server tells a dead one's apart."""
    return f"{UPLOAD_PREFIX}{os.getpid()}-"


def sweep_uploads(directory: str | None = None) -> int:
    """Delete the uploads of servers no longer running (a hard kill leaves its spooled files);
    those of live servers sharing the directory stay. Blocking: run once at start-up."""
    directory = directory or tempfile.gettempdir()
    removed = 0
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            pid = _spooled_by(entry.name)
            if pid is None or pid == os.getpid() or _alive(pid) or not entry.is_file():
                continue
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed += 1
    return removed


def _spooled_by(name: str) -> int | None:
    """The pid in a spooled upload's name (``whisper-upload-<pid>-<random>``), or None."""
    if not name.startswith(UPLOAD_PREFIX):
        return None
    pid, sep, _ = name[len(UPLOAD_PREFIX) :].partition("-")
    return int(pid) if sep and pid.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


async def _discard(engine: Engine, path: str) -> None:
    """Delete a spooled upload off the loop (at once if the request is being cancelled)."""
    try:
        await engine.run_audio(_remove, path)
    except asyncio.CancelledError:
        _remove(path)
        raise


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


async def read_form(
    request: web.Request, engine: Engine, form: AudioForm, admission: contextlib.ExitStack
) -> None:
    """Stream the multipart body into ``form``; take a queue place before any audio is spooled.

    The place is the named model's when the model field came first (as SDKs send it), else the
    default model's: ``_answer`` moves it if the model field then names another. Either way a
    full queue refuses the upload (503) before its audio costs a byte of disk.

    The caller deletes ``form.path``, which is set as soon as a temporary file exists.
    """
    if request.content_type != "multipart/form-data":
        raise web.HTTPUnsupportedMediaType(
            text=f"expected multipart/form-data with a 'file' part, got {request.content_type!r}"
        )
    limit = _limit_bytes(engine)
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(engine)
    try:
        reader = await request.multipart()
        async for part in _parts(engine, reader):
            name = part.name or ""
            if name == "file" and form.path is None:
                if "model" in form.fields:  # SDKs send the fields first
                    form.admitted = engine.model_name(require_model(form.fields["model"]))
                else:  # not known yet: the default model's place, moved later if need be
                    form.admitted = engine.config.default_model
                admission.enter_context(engine.admission.admit(form.admitted))
                await _save_file(engine, part, form, limit)
            elif name in ("timestamp_granularities[]", "timestamp_granularities"):
                form.granularities.append(await _read_field(engine, part))
            elif name and name != "file":
                form.fields[name] = await _read_field(engine, part)
            else:
                await _within(engine, part.release())
    except TooLarge:
        raise _too_large(engine) from None
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(engine) from None
    except (ValueError, AssertionError, LookupError, HttpProcessingError) as err:
        detail = getattr(err, "message", None) or str(err) or err.__class__.__name__
        raise InvalidRequest(f"malformed multipart body: {detail}", code="invalid_body") from None
    if form.path is None:
        raise InvalidRequest(
            "you must provide a 'file' part with the audio",
            param="file",
            code="missing_required_parameter",
        )
    if form.size == 0:
        raise BadAudio("the uploaded file is empty", param="file")


async def _parts(engine: Engine, reader: MultipartReader) -> AsyncIterator[BodyPartReader]:
    while True:
        part = await _within(engine, reader.next())
        if part is None:
            return
        if isinstance(part, BodyPartReader):
            yield part
        else:  # a nested multipart: nothing OpenAI sends
            await _within(engine, part.release())


# -- handlers -------------------------------------------------------------------------------


@routes.post("/v1/audio/transcriptions")
async def transcriptions(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "transcribe")


@routes.post("/v1/audio/translations")
async def translations(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "translate")


async def _handle(request: web.Request, task: Task) -> web.StreamResponse:
    with request.app[ENGINE].admission.answering():  # a shutdown waits for the whole answer
        return await _answer(request, task)


async def _answer(request: web.Request, task: Task) -> web.StreamResponse:
    engine = request.app[ENGINE]
    form = AudioForm()
    with contextlib.ExitStack() as admission:
        try:
            await read_form(request, engine, form, admission)
            req, sse = validate(engine, form, task)
            if form.admitted != req.model:  # the file came before a model field naming another
                admission.close()  # the default model's place, held while the file arrived
                admission.enter_context(engine.admission.admit(req.model))
            assert form.path is not None
            samples = await engine.decode_file(form.path)
        finally:
            if form.path is not None:
                await _discard(engine, form.path)
        # OpenAI gives words only in verbose_json; the granularity is accepted with any format.
        words = req.word_timestamps and req.response_format == "verbose_json"
        options = decode_options(req, engine.options(), word_timestamps=words)
        if sse:
            return await _events(request, engine, samples, options, req.model)
        result = await engine.transcribe(samples, options, req.model)
    as_home = engine.config.hass_names_for_http and req.task == "transcribe"
    if as_home and req.response_format in TEXT_ONLY:
        # Opted in as Home Assistant's door: a near-miss of a command answers as the command.
        language = result.language or req.language
        text = await engine.assist.answer(
            result.text, language, engine.assist.home(), samples, req.model
        )
        result = replace(result, text=text)
    rendered = render(result, req.response_format, granularities=req.granularities)
    if rendered.data is not None:
        return web.json_response(rendered.data)
    return web.Response(text=rendered.text, content_type=rendered.content_type)


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class _EventStream:
    """A text/event-stream answer, started by its first event; a vanished client ends it."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        self.gone = False

    @property
    def started(self) -> bool:
        return self.response.prepared

    async def send(self, data: dict[str, Any]) -> bool:
        """Write one event; False once the client has gone away."""
        try:
            if not self.started:
                await self.response.prepare(self.request)
            await self.response.write(_sse(data))
        except ConnectionError:
            self.gone = True
        return not self.gone


async def _events(
    request: web.Request, engine: Engine, samples: Any, options: Any, model: str
) -> web.StreamResponse:
    """transcript.text.delta per decoded segment, then transcript.text.done with the full text.

    The response starts with the first segment, so a fault before it (an English-only model asked
    to translate, a model that will not load) is still an ordinary error response. If the client
    goes away, the decode is cancelled.
    """
    queue: asyncio.Queue[Segment | None] = asyncio.Queue()
    job = asyncio.ensure_future(engine.transcribe(samples, options, model, queue.put_nowait))
    job.add_done_callback(lambda _: queue.put_nowait(None))
    stream = _EventStream(request)
    sent = ""
    try:
        while (segment := await queue.get()) is not None:
            delta = segment.text if sent else segment.text.lstrip()
            if not delta:
                continue
            sent += delta
            if not await stream.send({"type": "transcript.text.delta", "delta": delta}):
                return stream.response
        try:
            result = job.result()
        except WhisperError as err:
            if not stream.started:
                raise
            # Mid-stream the status line is gone: say it in-band, in OpenAI's error shape.
            await stream.send(_stream_error(err.message, err.type, err.code))
            return stream.response
        except Exception:
            if not stream.started:
                raise
            _LOGGER.exception("Transcription failed mid-stream")
            await stream.send(_stream_error(INTERNAL_MESSAGE, "server_error"))
            return stream.response
        if await stream.send({"type": "transcript.text.done", "text": result.text}):
            await stream.response.write_eof()
        return stream.response
    finally:
        if not job.done():
            job.cancel()
            await asyncio.wait([job])


def _stream_error(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"type": "error", **error_body(message, type_, code=code)}


# -- models ---------------------------------------------------------------------------------


async def _small_body(request: web.Request, engine: Engine) -> Any:
    """A small JSON or form body: at most MAX_SMALL_BODY bytes (413, told by Content-Length or
    found while reading), within --http-read-timeout (408), never the upload limit."""
    too_large = TooLarge(f"the body is larger than {MAX_SMALL_BODY // 1024} KiB")
    if request.content_length is not None and request.content_length > MAX_SMALL_BODY:
        raise too_large
    small = request.clone(client_max_size=MAX_SMALL_BODY)
    body: Any
    try:
        if request.content_type == "application/json":
            try:
                body = await _within(engine, small.json(loads=parse_json))
            except ValueError:
                raise InvalidRequest("the body is not valid JSON", code="invalid_body") from None
            if not isinstance(body, dict):
                raise InvalidRequest("the body must be a JSON object", code="invalid_body")
        elif request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            try:
                body = await _within(engine, small.post())
            except (ValueError, AssertionError, LookupError, HttpProcessingError):
                raise InvalidRequest("malformed form body", code="invalid_body") from None
        else:
            raise web.HTTPUnsupportedMediaType(
                text='send the model as JSON {"model": ...}, a form field or ?model='
            )
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    return body


def _model_entry(engine: Engine, status: dict[str, Any]) -> dict[str, Any]:
    name = status["name"]
    return {
        "id": name,
        "object": "model",
        "created": STARTED,
        "owned_by": "wyoming-whisper",
        "state": status["state"],
        "default": name == engine.config.default_model,
        "multilingual": model_languages(name) != ["en"],
    }


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    data = [_model_entry(engine, s) for s in engine.manager.status()]
    return web.json_response({"object": "list", "data": data})


@routes.get("/v1/models/{model:.+}")
async def get_model(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    requested = request.match_info["model"]
    try:
        name = engine.model_name(requested)
    except ModelNotFound as err:
        raise web.HTTPNotFound(text=err.message) from None
    status = next(s for s in engine.manager.status() if s["name"] == name)
    return web.json_response(_model_entry(engine, status))


@routes.post("/v1/model/unload")
async def unload(request: web.Request) -> web.Response:
    """Unload one model (JSON or form field ``model``, or ?model=) or, without a name, all."""
    engine = request.app[ENGINE]
    requested = request.query.get("model")
    if requested is None and request.body_exists:
        body = await _small_body(request, engine)
        requested = body.get("model")
        if requested is not None and not isinstance(requested, str):
            raise InvalidRequest("model must be a string", param="model", code="invalid_value")
    name = None if requested in (None, "", "all") else engine.model_name(requested)
    unloaded = await engine.manager.unload(name)
    statuses = engine.manager.status()
    if name is not None:
        statuses = [s for s in statuses if s["name"] == name]
    body = {
        "status": "success",
        "unloaded": unloaded,
        "models": [_model_entry(engine, s) for s in statuses],
    }
    if name is not None:  # the single-model shape other Whisper servers answer with
        body.update(model=name, was_loaded=name in unloaded)
    return web.json_response(body)
