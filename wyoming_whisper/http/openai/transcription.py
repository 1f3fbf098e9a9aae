"""``/v1/audio/transcriptions`` and ``/v1/audio/translations``: an upload read (``upload``),
checked by request.py, decoded on the engine's pools and answered in the asked format, or as
server-sent events (``events``)."""

from __future__ import annotations

import contextlib
from dataclasses import replace

from aiohttp import web

from ...engine import Engine
from ...formats import render
from ...request import (
    Task,
    TranscriptionRequest,
    build_request,
    decode_options,
    parse_bool,
    require_model,
)
from ..state import ENGINE
from .events import answer_with_events
from .spool import discard
from .upload import AudioForm, read_form

routes = web.RouteTableDef()

TEXT_ONLY = ("json", "text")  # formats without segments: a command may replace their text


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
            samples = await engine.read_file(form.path)
        finally:
            if form.path is not None:
                await discard(engine, form.path)
        # OpenAI gives words only in verbose_json; the granularity is accepted with any format.
        words = req.word_timestamps and req.response_format == "verbose_json"
        options = decode_options(req, engine.options(), word_timestamps=words)
        if sse:
            return await answer_with_events(request, engine, samples, options, req.model)
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
