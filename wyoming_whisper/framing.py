"""Wyoming's framing, read defensively: one JSON header line, then optional data and payload.

The wyoming library's reader trusts its peer; this one bounds every length, tells a fault that
loses the framing (hang up) from one that only spoils an event (answer ``error``, read on), and
turns an event whose fields do not fit its type into ``MalformedEvent`` instead of a crash.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from wyoming.event import Event

from .request import parse_json

T = TypeVar("T")
MAX_DATA_BYTES = 1 << 20  # JSON data of one event
MAX_PAYLOAD_BYTES = 4 << 20  # one audio chunk (about 20 s of 48 kHz stereo 16-bit)


class ProtocolError(Exception):
    """The byte stream is not Wyoming.

    ``fatal`` when framing is lost and we must hang up; ``skip_line`` when the rest of the
    current line is garbage still to be read past.
    """

    def __init__(self, message: str, *, fatal: bool, skip_line: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.skip_line = skip_line


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """Read one event; None at end of stream; ProtocolError for anything malformed."""
    first = await reader.read(1)
    if not first:
        return None
    if first not in b"{ \t\r\n":
        # Not the start of a JSON header: say so now, even if the garbage never ends its line.
        raise ProtocolError(
            "not a Wyoming event (expected a JSON header line)", fatal=False, skip_line=True
        )
    try:
        line = first if first == b"\n" else first + await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        raise ProtocolError("connection closed in the middle of an event", fatal=True) from None
    except asyncio.LimitOverrunError:
        raise ProtocolError("event header line too long", fatal=True) from None
    if not line.strip():
        raise ProtocolError("empty event line", fatal=False)
    try:
        header = parse_json(line)
    except ValueError:  # also UnicodeDecodeError
        raise ProtocolError("event header is not JSON", fatal=False) from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("event header has no 'type'", fatal=False)

    data = header.get("data") or {}
    data_length = _length(header, "data_length", MAX_DATA_BYTES)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD_BYTES)
    try:
        extra = await reader.readexactly(data_length) if data_length else b""
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        raise ProtocolError("connection closed in the middle of an event", fatal=True) from None
    if not isinstance(data, dict):
        raise ProtocolError("event 'data' is not an object", fatal=False)
    if extra:
        try:
            more = parse_json(extra)
        except ValueError:  # also UnicodeDecodeError
            raise ProtocolError("event data is not JSON", fatal=False) from None
        if not isinstance(more, dict):
            raise ProtocolError("event data is not an object", fatal=False)
        data = {**data, **more}
    return Event(type=header["type"], data=data, payload=payload)


def _length(header: dict, key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"'{key}' must be a non-negative integer", fatal=True)
    if value > limit:
        raise ProtocolError(f"'{key}' of {value} bytes exceeds the limit of {limit}", fatal=True)
    return value


class MalformedEvent(Exception):
    """An event of a known type whose data does not fit that type."""


def parse(kind: type[T], event: Event) -> T:
    """``kind.from_event``, with a wrong or missing field as MalformedEvent rather than a crash."""
    try:
        parsed = kind.from_event(event)  # type: ignore[attr-defined]
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise MalformedEvent(f"malformed {event.type} event: {err}") from None
    for key in ("rate", "width", "channels"):
        value = getattr(parsed, key, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            raise MalformedEvent(f"malformed {event.type} event: '{key}' must be an integer")
    for key in ("name", "language"):
        if not isinstance(getattr(parsed, key, None), (str, type(None))):
            raise MalformedEvent(f"malformed {event.type} event: '{key}' must be a string")
    for key in ("transcript_names", "transcript_terms"):
        if not isinstance(getattr(parsed, key, None), (list, tuple, type(None))):
            raise MalformedEvent(f"malformed {event.type} event: '{key}' must be a list")
    return parsed


async def skip_line(reader: asyncio.StreamReader) -> bool:
    """Read past the rest of a garbage line; False when the connection cannot go on."""
    try:
        await reader.readuntil(b"\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return False
    return True


def hung_up(reading: asyncio.Task[Event | None]) -> bool:
    """True when a finished read says the connection is gone (not a pipelined next event)."""
    if not reading.done():
        return False
    if reading.cancelled():
        return True
    err = reading.exception()
    if err is None:
        return reading.result() is None
    return isinstance(err, (ConnectionError, asyncio.IncompleteReadError)) or (
        isinstance(err, ProtocolError) and err.fatal
    )


class ClientGone(Exception):
    """The client hung up while its utterance was being decoded; the decode was cancelled."""


async def unless_hung_up(job: asyncio.Future[T], lookahead: asyncio.Task[Event | None]) -> T:
    """``job``'s result, unless the connection's next event (``lookahead``, read meanwhile)
    says the client hung up first: then ``job`` is cancelled and ClientGone raised."""
    watched: set[asyncio.Future[Any]] = {job, lookahead}
    await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    if not job.done() and hung_up(lookahead):
        job.cancel()
        await asyncio.wait([job])
        raise ClientGone
    return await job
