"""Reading an upload: the multipart form of a transcription or translation, streamed to a spool
file as it arrives and refused with 413 the moment it passes --max-upload-mb.

Every read of a request body waits at most --http-read-timeout (``within``): a client that stops
sending holds its connection, and its queue place, no longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ...engine import Engine
from ...errors import BadAudio, InvalidRequest, TooLarge
from ...request import require_model
from .spool import spool_prefix

T = TypeVar("T")

CHUNK_SIZE = 256 * 1024
MAX_FIELD_BYTES = 64 * 1024  # a prompt is at most a few hundred tokens


@dataclass
class AudioForm:
    """The multipart fields of a transcription or translation request, as sent."""

    fields: dict[str, str] = field(default_factory=dict)
    granularities: list[str] = field(default_factory=list)
    path: str | None = None
    size: int = 0
    admitted: str | None = None  # the model whose queue place the upload holds


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


async def within(engine: Engine, read: Awaitable[T]) -> T:
    """One read of a request body, given --http-read-timeout: a client that stops sending holds
    its connection (and its queue place) no longer; 408."""
    try:
        async with asyncio.timeout(engine.config.http_read_timeout):
            return await read
    except TimeoutError:
        raise _stalled(engine) from None


async def _read_field(engine: Engine, part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await within(engine, part.read_chunk(8192)):
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
    fd, path = await engine.run_audio(tempfile.mkstemp, "", spool_prefix())
    form.path = path
    out = os.fdopen(fd, "wb")
    try:
        while chunk := await within(engine, part.read_chunk(CHUNK_SIZE)):
            form.size += len(chunk)
            if form.size > limit:
                raise TooLarge("")
            await engine.run_audio(out.write, chunk)
    finally:
        out.close()  # large chunks bypass the 8 KiB buffer: at most a small tail to flush


async def read_form(
    request: web.Request, engine: Engine, form: AudioForm, admission: contextlib.ExitStack
) -> None:
    """Stream the multipart body into ``form``; take a queue place before any audio is spooled.

    The place is the named model's when the model field came first (as SDKs send it), else the
    default model's: ``transcription._answer`` moves it if the model field then names another.
    Either way a full queue refuses the upload (503) before its audio costs a byte of disk.

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
                await within(engine, part.release())
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
        part = await within(engine, reader.next())
        if part is None:
            return
        if isinstance(part, BodyPartReader):
            yield part
        else:  # a nested multipart: nothing OpenAI sends
            await within(engine, part.release())
