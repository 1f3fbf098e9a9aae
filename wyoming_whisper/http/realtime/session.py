"""One Realtime transcription session: its settings, the item being received, and the finals.

The client appends base64 audio, and either the server's VAD or the client's ``commit`` ends
each item. While speech arrives the session sends the confirmed words as
``conversation.item.input_audio_transcription.delta`` events (live text, agreement.py); when the
item ends, the rest and ``.completed``, decoded in the background while the next item arrives.
Every fault in a client event is an ``error`` event in the Realtime API's shape, after which the
session goes on.

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
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ...audio import G711Converter, PcmConverter
from ...backends.base import SAMPLE_RATE
from ...engine import Engine
from ...errors import INTERNAL_MESSAGE, InvalidRequest, TooLarge, WhisperError
from ...request import TranscriptionRequest, build_request, parse_json
from ...streaming import ENDPOINT_SECONDS, SPEECH_THRESHOLD, LiveText, Partial, Stream
from .settings import PCM_RATE, EventError, Settings, TurnDetection, parse_update

_LOGGER = logging.getLogger(__name__)
MAX_APPEND_BYTES = 15 << 20  # OpenAI's limit on one append's audio
OFF_LOOP_JSON_BYTES = 1 << 20  # a message this large is checked and parsed on the audio pool
MIN_COMMIT_MS = 100  # OpenAI refuses a commit of less audio


def converter_for(fmt: str) -> PcmConverter:
    if fmt == "audio/pcmu":
        return G711Converter("ulaw")
    if fmt == "audio/pcma":
        return G711Converter("alaw")
    return PcmConverter(PCM_RATE, 2, 1)


def endpoint_silence(detection: TurnDetection) -> float:
    """The silence that ends a turn: semantic VAD's eagerness is read as a VAD sensitivity."""
    if detection.type == "semantic_vad":
        sensitivity = {"high": "aggressive", "low": "relaxed"}.get(detection.eagerness or "")
        return ENDPOINT_SECONDS[sensitivity or "default"]
    return detection.silence_duration_ms / 1000


def error_json(err: WhisperError, event_id: str | None = None) -> dict[str, Any]:
    """The Realtime API's error object: a client's fault is ``invalid_request_error``."""
    return {
        "type": "invalid_request_error" if err.status < 500 else "server_error",
        "code": err.code,
        "message": err.message,
        "param": err.param,
        "event_id": event_id,
    }


def session_request(engine: Engine, settings: Settings, *, beta: bool) -> TranscriptionRequest:
    """The request an item with ``settings`` makes, checked by ``build_request`` like every
    door's; a fault names the field where the session update put it."""
    where = "session.input_audio_transcription" if beta else "session.audio.input.transcription"
    try:
        return build_request(
            engine,
            model=settings.model,
            language=settings.language,
            prompt=settings.prompt,
        )
    except WhisperError as err:
        if err.param in ("model", "language", "prompt"):
            err.param = f"{where}.{err.param}"
        raise


def user_item(item_id: str) -> dict[str, Any]:
    """A committed item as the conversation holds it: the user's audio, transcribed later."""
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_audio", "transcript": None}],
    }


@dataclass
class Item:
    """One user turn: the audio between two commits, decoded into one transcript."""

    id: str
    stream: Stream
    started_ms: int  # where its audio starts in the session's audio
    speaking: bool = False  # speech_started sent
    live: LiveText = field(default_factory=LiveText)  # confirmed words sent as deltas


class Events:
    """The events a session sends, numbered; none once the client has gone."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self._numbers = itertools.count(1)

    async def send(self, kind: str, **fields: Any) -> None:
        if self.ws.closed:
            return
        event = {"type": kind, "event_id": f"event_{next(self._numbers):06d}", **fields}
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_json(event)

    async def error(self, err: WhisperError, event_id: str | None = None) -> None:
        _LOGGER.warning("Realtime client error: %s", err.message)
        await self.send("error", error=error_json(err, event_id))

    async def about(self, item: Item, kind: str, **fields: Any) -> None:
        """An event about an item's transcription (its audio is the item's only content part)."""
        await self.send(
            f"conversation.item.input_audio_transcription.{kind}",
            item_id=item.id,
            content_index=0,
            **fields,
        )


async def read_event(engine: Engine, text: str) -> dict[str, Any]:
    """A client event's JSON object; a large one (an append) is parsed on the audio pool."""
    try:
        if len(text) > OFF_LOOP_JSON_BYTES:  # ~50 ms for 20 MB
            event = await engine.run_audio(parse_json, text)
        else:
            event = parse_json(text)
    except ValueError as err:
        raise EventError(f"the event is not valid JSON: {err}", code="invalid_json") from None
    if not isinstance(event, dict):
        raise EventError("an event must be a JSON object", code="invalid_json")
    return event


async def transcribe(engine: Engine, events: Events, item: Item, flush: Callable[[], Any]) -> None:
    """An ended item's final decode: the words not yet sent as a delta, then ``completed``."""
    stream = item.stream
    try:
        with engine.admission.answering():
            await stream.convert(flush)
            if not stream.samples:
                raise InvalidRequest("no audio in the committed buffer", param="audio")
            result = await stream.finish()
            if tail := item.live.rest(result.text):
                await events.about(item, "delta", delta=tail)
            await events.about(
                item,
                "completed",
                transcript=result.text,
                usage={"type": "duration", "seconds": round(stream.seconds, 3)},
            )
            engine.metrics.requests.labels("realtime", "ok").inc()
    except WhisperError as err:
        _LOGGER.warning("Realtime transcription failed: %s", err.message)
        engine.metrics.requests.labels("realtime", err.code or "error").inc()
        await events.about(item, "failed", error=error_json(err))
    except asyncio.CancelledError:
        raise
    except Exception:
        _LOGGER.exception("Realtime transcription failed")
        internal = {
            "type": "server_error",
            "code": "internal_error",
            "message": INTERNAL_MESSAGE,
            "param": None,
        }
        await events.about(item, "failed", error=internal)
    finally:
        await stream.close()


class Session:
    """One Realtime connection: its settings, the item being received, and the finals."""

    def __init__(self, engine: Engine, ws: web.WebSocketResponse, *, beta: bool) -> None:
        self.engine = engine
        self.events = Events(ws)
        self.beta = beta  # the shape of the last session update (and of session.created)
        self.id = "sess_" + uuid.uuid4().hex[:24]
        self.settings = Settings()
        self._converter = converter_for(self.settings.format)
        self._received_ms = 0.0  # audio appended so far, all items
        self._item: Item | None = None
        self._previous: str | None = None  # the last committed item
        self._finals: set[asyncio.Task[None]] = set()

    async def send_session(self, kind: str) -> None:
        await self.events.send(kind, session=self.settings.as_json(self.id, beta=self.beta))

    # -- client events ---------------------------------------------------------------------------

    async def handle(self, text: str) -> None:
        """One client event; its fault is an ``error`` event, and the session goes on."""
        event_id: str | None = None
        try:
            event = await read_event(self.engine, text)
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
            await self.events.error(err, event_id)

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "session.update": self._update,
            "transcription_session.update": self._update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit,
            "input_audio_buffer.clear": self._clear,
        }

    async def _update(self, event: dict[str, Any]) -> None:
        settings, beta = parse_update(self.settings, event)
        # An unknown model, a language it cannot speak, a long prompt: refused before it is kept.
        session_request(self.engine, settings, beta=beta)
        if settings.format != self.settings.format:
            self._converter = converter_for(settings.format)
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
        item.stream.check_room(self._converter.output_length(len(audio) * 3 // 4))
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise EventError(
                "'audio' is not valid base64", param="audio", code="invalid_audio"
            ) from None
        before = item.stream.samples
        await item.stream.feed(self._converter, data)
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
            start = (stream.speech_start or 0) * 1000 // SAMPLE_RATE
            begin = max(0, item.started_ms + start - detection.prefix_padding_ms)
            await self.events.send(
                "input_audio_buffer.speech_started", audio_start_ms=int(begin), item_id=item.id
            )
        if item.speaking and stream.endpoint_reached:
            end = item.started_ms + stream.speech_end * 1000 // SAMPLE_RATE
            await self.events.send(
                "input_audio_buffer.speech_stopped", audio_end_ms=end, item_id=item.id
            )
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
        await self.events.send("input_audio_buffer.cleared")

    # -- items -----------------------------------------------------------------------------------

    def _open(self) -> Item:
        """A new item for the audio that follows, with the session's settings."""
        req = session_request(self.engine, self.settings, beta=self.beta)
        self.engine.admission.check_capacity(req.model)  # refuse at once when the queue is full
        detection = self.settings.turn_detection
        live = LiveText()
        stream = Stream.open(
            self.engine,
            req,
            endpoint_silence=endpoint_silence(detection) if detection else None,
            speech_threshold=detection.threshold if detection else SPEECH_THRESHOLD,
            on_partial=live.told,
        )
        item = Item("item_" + uuid.uuid4().hex[:20], stream, int(self._received_ms), live=live)
        live.listen(self._live, item)
        self._item = item
        return item

    async def _live(self, item: Item, partial: Partial) -> None:
        """Confirmed words while the speaker talks, as a delta (recorded as sent in the statement
        that writes them: see ``LiveText.take``)."""
        if delta := item.live.take(partial):
            await self.events.about(item, "delta", delta=delta)

    async def _end_item(self, item: Item) -> None:
        """Commit the item and decode it in the background: the session keeps receiving."""
        self._item = None
        previous, self._previous = self._previous, item.id
        await self.events.send(
            "input_audio_buffer.committed", item_id=item.id, previous_item_id=previous
        )
        added = "conversation.item.created" if self.beta else "conversation.item.added"
        await self.events.send(added, item=user_item(item.id), previous_item_id=previous)
        # The decoder's tail belongs to this item; the next item's audio starts afresh.
        flush, self._converter = self._converter.flush, converter_for(self.settings.format)
        task = asyncio.create_task(transcribe(self.engine, self.events, item, flush))
        self._finals.add(task)
        task.add_done_callback(self._finals.discard)

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
