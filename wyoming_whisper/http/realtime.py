"""OpenAI's Realtime API, transcription sessions: ``GET /v1/realtime?intent=transcription``.

A WebSocket of JSON events (docs/http-api.md). The client configures the session
(``session.update`` with ``session.type: "transcription"``, or the older beta
``transcription_session.update``), appends base64 audio, and either the server's VAD or the
client's ``commit`` ends each item. While speech arrives the server sends the confirmed words as
``conversation.item.input_audio_transcription.delta`` events (live text, agreement.py); when the
item ends, the rest and ``.completed``. Every fault in a client event is an ``error`` event in the
Realtime API's shape, after which the session goes on.

Each item is one ``streaming.Stream``, so the audio, the VAD, early decoding and live text are
those of the other streaming doors.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from ..agreement import rest
from ..audio import G711Converter, PcmConverter
from ..backends.base import SAMPLE_RATE
from ..engine import Engine
from ..errors import INTERNAL_MESSAGE, InvalidRequest, TooLarge, WhisperError
from ..request import TranscriptionRequest, build_request, parse_json
from ..streaming import ENDPOINT_SECONDS, Partial, Stream
from ..words import split
from .auth import check_key
from .state import ENGINE

_LOGGER = logging.getLogger(__name__)
routes = web.RouteTableDef()
PATH = "/v1/realtime"
MAX_APPEND_BYTES = 15 << 20  # OpenAI's limit on one append's audio
# A 15 MiB append is 20 MiB of base64; 1 MiB more lets one a little larger get its error event.
# aiohttp holds 3 to 4 copies of a message while it reassembles and decodes it (~80 MB at this
# size). Compression is never negotiated: 20 KB of deflate inflated to 21 MB of lists.
MAX_MESSAGE_BYTES = 21 << 20
OFF_LOOP_JSON_BYTES = 1 << 20  # a message this large is checked and parsed on the audio pool
MIN_COMMIT_MS = 100  # OpenAI refuses a commit of less audio
BETA_PROTOCOL = "openai-beta.realtime-v1"

# Audio formats: the GA names, the beta names, and how each is decoded.
FORMATS = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
BETA_FORMATS = {beta: ga for ga, beta in FORMATS.items()}


class EventError(InvalidRequest):
    """A client event that does not fit the API (an ``invalid_request_error``)."""

    code = "invalid_value"


@dataclass(frozen=True)
class TurnDetection:
    """``server_vad`` (or ``semantic_vad``, run as server VAD with its eagerness as the pause)."""

    type: str = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    eagerness: str | None = None

    def as_json(self) -> dict[str, Any]:
        if self.type == "semantic_vad":
            return {"type": self.type, "eagerness": self.eagerness or "auto"}
        return {
            "type": self.type,
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
        }

    @property
    def silence_seconds(self) -> float:
        if self.type == "semantic_vad":
            sensitivity = {"high": "aggressive", "low": "relaxed"}.get(self.eagerness or "")
            return ENDPOINT_SECONDS[sensitivity or "default"]
        return self.silence_duration_ms / 1000


@dataclass(frozen=True)
class Settings:
    """A transcription session's configuration, as ``session.updated`` shows it."""

    format: str = "audio/pcm"
    model: str | None = None  # the name the client asked for ("whisper-1" when none)
    language: str | None = None
    prompt: str = ""
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    noise_reduction: dict[str, Any] | None = None  # accepted and shown; not applied
    include: tuple[str, ...] = ()

    def as_json(self, session_id: str, *, beta: bool) -> dict[str, Any]:
        transcription = {
            "model": self.model or "whisper-1",
            "language": self.language,
            "prompt": self.prompt,
        }
        detection = self.turn_detection.as_json() if self.turn_detection else None
        if beta:
            return {
                "id": session_id,
                "object": "realtime.transcription_session",
                "input_audio_format": FORMATS[self.format],
                "input_audio_transcription": transcription,
                "turn_detection": detection,
                "input_audio_noise_reduction": self.noise_reduction,
                "include": list(self.include),
            }
        audio_format: dict[str, Any] = {"type": self.format}
        if self.format == "audio/pcm":
            audio_format["rate"] = 24000
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": session_id,
            "audio": {
                "input": {
                    "format": audio_format,
                    "transcription": transcription,
                    "turn_detection": detection,
                    "noise_reduction": self.noise_reduction,
                }
            },
            "include": list(self.include),
        }


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EventError(f"'{param}' must be an object", param=param)
    return value


def _section(value: Any, param: str) -> dict[str, Any]:
    """A part of the session that may be left out (None: nothing changes); anything but an object
    is a fault, an empty list or string included."""
    return {} if value is None else _object(value, param)


def _number(value: Any, param: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise EventError(f"'{param}' must be a number from {low:g} to {high:g}", param=param)
    return float(value)


def parse_turn_detection(value: Any, param: str) -> TurnDetection | None:
    if value is None:
        return None
    raw = _object(value, param)
    kind = raw.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise EventError(
            f"'{param}.type' must be 'server_vad' or 'semantic_vad', got {kind!r}",
            param=f"{param}.type",
        )
    detection = TurnDetection(type=kind)
    if kind == "semantic_vad":
        eagerness = raw.get("eagerness", "auto")
        if eagerness not in ("low", "medium", "high", "auto"):
            raise EventError(
                f"'{param}.eagerness' must be low, medium, high or auto", param=f"{param}.eagerness"
            )
        return replace(detection, eagerness=eagerness)
    values: dict[str, Any] = {}
    for name, low, high in (
        ("threshold", 0.0, 1.0),
        ("prefix_padding_ms", 0, 10_000),
        ("silence_duration_ms", 0, 10_000),
    ):
        if raw.get(name) is not None:
            number = _number(raw[name], f"{param}.{name}", low, high)
            values[name] = number if name == "threshold" else int(number)
    return replace(detection, **values)


def parse_session(
    settings: Settings, session: dict[str, Any], *, beta: bool, prefix: str
) -> Settings:
    """``settings`` with a ``session.update`` (GA) or ``transcription_session.update`` (beta)
    applied; fields left out keep their value."""
    changes: dict[str, Any] = {}
    if beta:
        fmt = session.get("input_audio_format")
        if fmt is not None:
            if fmt not in BETA_FORMATS:
                raise EventError(
                    f"'{prefix}.input_audio_format' must be pcm16, g711_ulaw or g711_alaw, "
                    f"got {fmt!r}",
                    param=f"{prefix}.input_audio_format",
                )
            changes["format"] = BETA_FORMATS[fmt]
        transcription, where = session.get("input_audio_transcription"), "input_audio_transcription"
        detection_key, noise_key = "turn_detection", "input_audio_noise_reduction"
        holder, base = session, prefix
    else:
        kind = session.get("type", "transcription")
        if kind != "transcription":
            raise EventError(
                f"this server transcribes only: '{prefix}.type' must be 'transcription', "
                f"got {kind!r} (connect with ?intent=transcription)",
                param=f"{prefix}.type",
            )
        audio = _section(session.get("audio"), f"{prefix}.audio")
        holder = _section(audio.get("input"), f"{prefix}.audio.input")
        base = f"{prefix}.audio.input"
        if holder.get("format") is not None:
            fmt_obj = _object(holder["format"], f"{base}.format")
            fmt = fmt_obj.get("type", "audio/pcm")
            if fmt not in FORMATS:
                raise EventError(
                    f"'{base}.format.type' must be audio/pcm, audio/pcmu or audio/pcma, "
                    f"got {fmt!r}",
                    param=f"{base}.format.type",
                )
            if fmt == "audio/pcm" and fmt_obj.get("rate", 24000) != 24000:
                raise EventError(
                    f"'{base}.format.rate' must be 24000 for audio/pcm", param=f"{base}.format.rate"
                )
            changes["format"] = fmt
        transcription, where = holder.get("transcription"), "transcription"
        detection_key, noise_key = "turn_detection", "noise_reduction"
    if transcription is not None:
        raw = _object(transcription, f"{base}.{where}")
        for name in ("model", "language", "prompt"):
            if name in raw:
                value = raw[name]
                if value is not None and not isinstance(value, str):
                    raise EventError(
                        f"'{base}.{where}.{name}' must be a string", param=f"{base}.{where}.{name}"
                    )
                changes[name] = value if name != "prompt" else (value or "")
    if detection_key in holder:
        changes["turn_detection"] = parse_turn_detection(
            holder[detection_key], f"{base}.{detection_key}"
        )
    if noise_key in holder:
        noise = holder[noise_key]
        changes["noise_reduction"] = (
            None if noise is None else _object(noise, f"{base}.{noise_key}")
        )
    include = session.get("include")
    if include is not None:
        if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
            raise EventError(f"'{prefix}.include' must be a list of strings", param="include")
        changes["include"] = tuple(include)
    return replace(settings, **changes)


def decoder_for(fmt: str) -> PcmConverter:
    if fmt == "audio/pcmu":
        return G711Converter("ulaw")
    if fmt == "audio/pcma":
        return G711Converter("alaw")
    return PcmConverter(24000, 2, 1)


@dataclass
class Item:
    """One user turn: the audio between two commits, decoded into one transcript."""

    id: str
    stream: Stream
    started_ms: int  # where its audio starts in the session's audio
    speaking: bool = False  # speech_started sent
    sent: list[str] = field(default_factory=list)  # confirmed words sent as deltas


class Session:
    """One Realtime connection: its settings, the item being received, and the finals."""

    def __init__(self, engine: Engine, ws: web.WebSocketResponse, *, beta: bool) -> None:
        self.engine = engine
        self.ws = ws
        self.beta = beta  # the shape of the last session update (and of session.created)
        self.id = "sess_" + uuid.uuid4().hex[:24]
        self.settings = Settings()
        self._events = itertools.count(1)
        self._decoder = decoder_for(self.settings.format)
        self._received_ms = 0.0  # audio appended so far, all items
        self._item: Item | None = None
        self._previous: str | None = None  # the last committed item
        self._finals: set[asyncio.Task[None]] = set()

    # -- sending ---------------------------------------------------------------------------------

    async def send(self, kind: str, **fields: Any) -> None:
        if self.ws.closed:
            return
        event = {"type": kind, "event_id": f"event_{next(self._events):06d}", **fields}
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_json(event)

    async def error(self, err: WhisperError, event_id: str | None = None) -> None:
        _LOGGER.warning("Realtime client error: %s", err.message)
        await self.send("error", error=error_json(err, event_id))

    async def send_session(self, kind: str) -> None:
        await self.send(kind, session=self.settings.as_json(self.id, beta=self.beta))

    # -- client events ---------------------------------------------------------------------------

    async def handle(self, text: str) -> None:
        """One client event; its fault is an ``error`` event, and the session goes on."""
        event_id: str | None = None
        try:
            try:
                if len(text) > OFF_LOOP_JSON_BYTES:  # an append: ~50 ms for 20 MB
                    event = await self.engine.run_audio(parse_json, text)
                else:
                    event = parse_json(text)
            except ValueError as err:
                raise EventError(
                    f"the event is not valid JSON: {err}", code="invalid_json"
                ) from None
            if not isinstance(event, dict):
                raise EventError("an event must be a JSON object", code="invalid_json")
            if isinstance(event.get("event_id"), str):
                event_id = event["event_id"]
            kind = event.get("type")
            handler = self._handlers().get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise EventError(
                    f"unknown or unsupported event type {kind!r} in a transcription session",
                    param="type",
                    code="invalid_event_type",
                )
            await handler(event)
        except WhisperError as err:
            await self.error(err, event_id)

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "session.update": self._update,
            "transcription_session.update": self._update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit,
            "input_audio_buffer.clear": self._clear,
        }

    async def _update(self, event: dict[str, Any]) -> None:
        beta = event["type"] == "transcription_session.update"
        session = _object(event.get("session"), "session")
        if not beta and "type" not in session and "input_audio_format" in session:
            beta = True  # beta fields sent with the GA event name
        settings = parse_session(self.settings, session, beta=beta, prefix="session")
        self._request(settings, beta)  # unknown model, a language it cannot speak, long prompt
        if settings.format != self.settings.format:
            self._decoder = decoder_for(settings.format)
        self.settings, self.beta = settings, beta
        item = self._item
        if item is not None and item.stream.samples == 0:  # nothing heard yet: new settings now
            await item.stream.close()
            self._item = None
        await self.send_session(
            "transcription_session.updated"
            if event["type"].startswith("transcription_session")
            else "session.updated"
        )

    def _request(self, settings: Settings, beta: bool) -> TranscriptionRequest:
        where = "session.input_audio_transcription" if beta else "session.audio.input.transcription"
        try:
            return build_request(
                self.engine,
                model=settings.model,
                language=settings.language,
                prompt=settings.prompt or None,
            )
        except WhisperError as err:
            if err.param in ("model", "language", "prompt"):
                err.param = f"{where}.{err.param}"
            raise

    async def _append(self, event: dict[str, Any]) -> None:
        audio = event.get("audio")
        if not isinstance(audio, str):
            raise EventError("'audio' must be a base64 string", param="audio")
        if len(audio) * 3 // 4 > MAX_APPEND_BYTES:
            raise TooLarge("one append may carry at most 15 MiB of audio", param="audio")
        if not audio:
            return
        item = self._item or self._open()
        # What the audio will become is known before it is decoded: 15 MiB of G.711 is 1,966 s.
        item.stream.check_room(self._decoder.output_length(len(audio) * 3 // 4))
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise EventError(
                "'audio' is not valid base64", param="audio", code="invalid_audio"
            ) from None
        before = item.stream.samples
        await item.stream.feed(self._decoder, data)
        self._received_ms += (item.stream.samples - before) * 1000 / SAMPLE_RATE
        await self._watch(item)

    async def _watch(self, item: Item) -> None:
        """Server VAD: speech_started, then, after the set silence, speech_stopped and commit."""
        detection = self.settings.turn_detection
        if detection is None:
            return
        stream = item.stream
        if stream.heard_speech and not item.speaking:
            item.speaking = True
            start = (stream.dropped + (stream.tracker.speech_start or 0)) * 1000 // SAMPLE_RATE
            begin = max(0, item.started_ms + start - detection.prefix_padding_ms)
            await self.send(
                "input_audio_buffer.speech_started", audio_start_ms=int(begin), item_id=item.id
            )
        if item.speaking and stream.endpoint_reached:
            end = (
                item.started_ms + (stream.dropped + stream.tracker.speech_end) * 1000 // SAMPLE_RATE
            )
            await self.send("input_audio_buffer.speech_stopped", audio_end_ms=end, item_id=item.id)
            await self._end_item(item)

    async def _commit(self, event: dict[str, Any]) -> None:
        item = self._item
        heard = item.stream.samples * 1000 / SAMPLE_RATE if item else 0.0
        if item is None or heard < MIN_COMMIT_MS:
            raise EventError(
                f"Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {heard:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        await self._end_item(item)

    async def _clear(self, event: dict[str, Any]) -> None:
        item, self._item = self._item, None
        if item is not None:
            await item.stream.close()
        await self.send("input_audio_buffer.cleared")

    # -- items -----------------------------------------------------------------------------------

    def _open(self) -> Item:
        """A new item for the audio that follows, with the session's settings."""
        req = self._request(self.settings, self.beta)
        self.engine.check_capacity(req.model)  # refuse at once when the queue is full
        detection = self.settings.turn_detection

        async def on_partial(partial: Partial) -> None:
            await self._delta(item, partial)  # only after audio, so once ``item`` below exists

        stream = Stream.open(
            self.engine,
            req,
            endpoint_silence=detection.silence_seconds if detection else None,
            on_partial=on_partial,
        )
        if detection is not None:
            stream.tracker.threshold = detection.threshold
        item = Item("item_" + uuid.uuid4().hex[:20], stream, int(self._received_ms))
        self._item = item
        return item

    async def _about(self, item: Item, kind: str, **fields: Any) -> None:
        """An event about an item's transcription (its audio is the item's only content part)."""
        await self.send(
            f"conversation.item.input_audio_transcription.{kind}",
            item_id=item.id,
            content_index=0,
            **fields,
        )

    async def _delta(self, item: Item, partial: Partial) -> None:
        """Confirmed words while the speaker talks (recorded before the write: see Wyoming)."""
        if partial.delta:
            item.sent.extend(split(partial.delta))
            await self._about(item, "delta", delta=partial.delta)

    async def _end_item(self, item: Item) -> None:
        """Commit the item and decode it in the background: the session keeps receiving."""
        self._item = None
        previous, self._previous = self._previous, item.id
        await self.send("input_audio_buffer.committed", item_id=item.id, previous_item_id=previous)
        message = {
            "id": item.id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        added = "conversation.item.created" if self.beta else "conversation.item.added"
        await self.send(added, item=message, previous_item_id=previous)
        # The decoder's tail belongs to this item; the next item's audio starts afresh.
        flush, self._decoder = self._decoder.flush, decoder_for(self.settings.format)
        task = asyncio.create_task(self._transcribe(item, flush))
        self._finals.add(task)
        task.add_done_callback(self._finals.discard)

    async def _transcribe(self, item: Item, flush: Callable[[], Any]) -> None:
        stream = item.stream
        try:
            with self.engine.answering():
                await stream.convert(flush)
                if not stream.samples:
                    raise InvalidRequest("no audio in the committed buffer", param="audio")
                result = await stream.finish()
                if tail := rest(result.text, item.sent):
                    await self._about(item, "delta", delta=tail)
                await self._about(
                    item,
                    "completed",
                    transcript=result.text,
                    usage={"type": "duration", "seconds": round(stream.seconds, 3)},
                )
                self.engine.metrics.requests.labels("realtime", "ok").inc()
        except WhisperError as err:
            _LOGGER.warning("Realtime transcription failed: %s", err.message)
            self.engine.metrics.requests.labels("realtime", err.code or "error").inc()
            await self._about(item, "failed", error=error_json(err))
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("Realtime transcription failed")
            await self._about(
                item,
                "failed",
                error={
                    "type": "server_error",
                    "code": "internal_error",
                    "message": INTERNAL_MESSAGE,
                    "param": None,
                },
            )
        finally:
            await stream.close()

    async def close(self) -> None:
        """The client went away: cancel the item's background work and every final."""
        item, self._item = self._item, None
        if item is not None:
            await item.stream.close()
        for task in list(self._finals):
            task.cancel()
        if self._finals:
            await asyncio.wait(self._finals)

    @property
    def busy(self) -> bool:
        """Whether committed items are still being decoded (a quiet client is then waiting)."""
        return bool(self._finals)


def error_json(err: WhisperError, event_id: str | None = None) -> dict[str, Any]:
    """The Realtime API's error object: a client's fault is ``invalid_request_error``."""
    return {
        "type": "invalid_request_error" if err.status < 500 else "server_error",
        "code": err.code,
        "message": err.message,
        "param": err.param,
        "event_id": event_id,
    }


@routes.get(PATH)
async def realtime(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    config = engine.config
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    # Echo one offered subprotocol ("realtime" first), or a browser drops the connection.
    protocols = sorted((p for p in offered if p), key=lambda p: p != "realtime")
    ws = web.WebSocketResponse(
        max_msg_size=MAX_MESSAGE_BYTES, protocols=protocols[:1], compress=False
    )
    await ws.prepare(request)
    beta = BETA_PROTOCOL in offered or "realtime=v1" in request.headers.get("OpenAI-Beta", "")
    session = Session(engine, ws, beta=beta)
    try:
        if config.api_key:
            check_key(request, config.api_key, protocol=True)  # browsers cannot set headers
        intent = request.query.get("intent", "transcription")
        if intent != "transcription":
            raise EventError(
                f"this server offers transcription sessions only: intent={intent!r}",
                param="intent",
            )
        engine.check_capacity(engine.model_name(None))
        await session.send_session("transcription_session.created" if beta else "session.created")
        while True:
            try:
                msg = await ws.receive(timeout=config.wyoming_idle_timeout)
            except TimeoutError:
                if session.busy:
                    continue  # waiting for its transcripts is not idling
                raise
            if msg.type == WSMsgType.TEXT:
                await session.handle(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await session.error(
                    EventError("send events as JSON text messages", code="invalid_json")
                )
            elif msg.type == WSMsgType.ERROR:
                await _close(
                    session,
                    TooLarge(f"message rejected: {ws.exception()}"),
                    WSCloseCode.MESSAGE_TOO_BIG,
                )
                return ws
            else:  # the client closed or went away: its work is cancelled below
                return ws
    except TimeoutError:
        await _close(
            session,
            EventError("no event received for too long", code="idle_timeout"),
            WSCloseCode.POLICY_VIOLATION,
        )
    except WhisperError as err:
        code = WSCloseCode.TRY_AGAIN_LATER if err.status >= 500 else WSCloseCode.POLICY_VIOLATION
        await _close(session, err, code)
    except (ConnectionError, asyncio.CancelledError):
        raise
    except Exception:
        _LOGGER.exception("Realtime session failed")
        await _close(session, WhisperError(INTERNAL_MESSAGE), WSCloseCode.INTERNAL_ERROR)
    finally:
        await session.close()
    return ws


async def _close(session: Session, err: WhisperError, code: int) -> None:
    """A fault that ends the session: its ``error`` event, then the close frame."""
    await session.error(err)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await session.ws.close(code=code, message=err.message.encode()[:120])
