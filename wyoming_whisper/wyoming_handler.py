"""Wyoming events <-> the engine: describe/info, transcribe + audio-start/chunk/stop -> transcript.

Events are read with our own bounded reader rather than the library's, so a malformed line, an
oversized declared length or a stalled client gets an ``error`` event instead of a silent hang-up,
and never touches other connections.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler

from . import __version__
from .audio import PcmConverter
from .backends.base import SAMPLE_RATE
from .engine import Engine
from .errors import BadAudio, TooLarge, WhisperError
from .languages import model_languages, normalize_language

_LOGGER = logging.getLogger(__name__)
MAX_HEADER_BYTES = 64 * 1024
MAX_DATA_BYTES = 1 << 20  # JSON data of one event
MAX_PAYLOAD_BYTES = 4 << 20  # one audio chunk (about 20 s of 48 kHz stereo 16-bit)
WHISPER_ATTRIBUTION = Attribution(name="OpenAI", url="https://github.com/openai/whisper")


class ProtocolError(Exception):
    """The byte stream is not Wyoming; ``fatal`` when framing is lost and we must hang up."""

    def __init__(self, message: str, *, fatal: bool) -> None:
        super().__init__(message)
        self.fatal = fatal


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """Read one event; None at end of stream; ProtocolError for anything malformed."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as err:
        if not err.partial.strip():
            return None
        raise ProtocolError("connection closed in the middle of an event", fatal=True) from None
    except asyncio.LimitOverrunError:
        raise ProtocolError("event header line too long", fatal=True) from None
    if not line.strip():
        raise ProtocolError("empty event line", fatal=False)
    try:
        header = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
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
            more = json.loads(extra)
        except (json.JSONDecodeError, UnicodeDecodeError):
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


def build_info(engine: Engine) -> Info:
    """One ASR program listing every served model."""
    models = [
        AsrModel(
            name=name,
            description=f"Whisper {name}",
            attribution=WHISPER_ATTRIBUTION,
            installed=True,
            languages=model_languages(name),
            version=__version__,
        )
        for name in engine.manager.models
    ]
    program = AsrProgram(
        name="wyoming-whisper",
        description=f"Whisper speech-to-text ({engine.manager.backend.name})",
        attribution=WHISPER_ATTRIBUTION,
        installed=True,
        version=__version__,
        models=models,
        supports_transcript_streaming=False,
    )
    return Info(asr=[program])


@dataclass
class Utterance:
    """What one transcribe ... audio-stop exchange has gathered so far."""

    model: str
    language: str | None = None
    hotwords: tuple[str, ...] = ()
    converter: PcmConverter | None = None
    chunks: list[np.ndarray] = field(default_factory=list)
    samples: int = 0
    failed: bool = False  # an error was already sent; ignore audio until audio-stop


class WhisperEventHandler(AsyncEventHandler):
    """One Wyoming connection; several utterances may follow each other on it."""

    def __init__(
        self, engine: Engine, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(reader, writer)
        self.engine = engine
        self.config = engine.config
        self._utterance: Utterance | None = None
        self._pending: Transcribe | None = None

    async def run(self) -> None:
        """Read events until the client leaves; answer protocol faults with an error event."""
        self._is_running = True
        try:
            while self._is_running:
                timeout = self.config.wyoming_idle_timeout if self._utterance else None
                try:
                    event = await asyncio.wait_for(read_event(self.reader), timeout)
                except asyncio.TimeoutError:
                    self._utterance = None
                    await self._error(
                        "no audio received for too long; utterance dropped", "timeout"
                    )
                    continue
                except ProtocolError as err:
                    await self._error(f"malformed event: {err}", "bad-event")
                    if err.fatal:
                        break
                    continue
                if event is None or not await self.handle_event(event):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await self.disconnect()
            self.writer.close()

    async def write_event(self, event: Event) -> None:
        try:
            await async_write_event(event, self.writer)
        except (ConnectionError, RuntimeError):  # the client is gone; nothing left to tell it
            self._is_running = False

    async def _error(self, text: str, code: str) -> None:
        _LOGGER.warning("Wyoming client error: %s", text)
        await self.write_event(Error(text=text, code=code).event())

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._dispatch(event)
        except WhisperError as err:
            if self._utterance is not None:
                self._utterance.failed = True
            await self._error(err.message, err.code or "error")
        except (KeyError, TypeError, ValueError) as err:
            await self._error(f"malformed {event.type} event: {err}", "bad-event")
        except Exception:
            _LOGGER.exception("Unexpected error handling %s", event.type)
            self._utterance = None
            await self._error("internal server error; see the server log", "internal-error")
        return self._is_running

    async def _dispatch(self, event: Event) -> None:
        if Describe.is_type(event.type):
            await self.write_event(build_info(self.engine).event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Transcribe.is_type(event.type):
            self._pending = Transcribe.from_event(event)
            self._utterance = None
            self._start_utterance()
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            current = self._utterance or self._start_utterance()
            if not current.failed:
                current.converter = PcmConverter(start.rate, start.width, start.channels)
        elif AudioChunk.is_type(event.type):
            self._on_chunk(AudioChunk.from_event(event))
        elif AudioStop.is_type(event.type):
            done, self._utterance, self._pending = self._utterance, None, None
            if done is None:
                raise BadAudio("audio-stop without any audio")
            if not done.failed:
                await self._finish(done)

    def _start_utterance(self) -> Utterance:
        """A new utterance using the last transcribe request (or the defaults)."""
        req = self._pending or Transcribe()
        utt = Utterance(model=self.config.default_model)
        self._utterance = utt
        utt.model = self.engine.model_name(req.name)
        utt.language = normalize_language(req.language)
        names = [str(n) for n in (req.transcript_names or []) if str(n).strip()]
        terms = [str(t) for t in (req.transcript_terms or []) if str(t).strip()]
        utt.hotwords = tuple(dict.fromkeys([*names, *terms]))
        return utt

    def _on_chunk(self, chunk: AudioChunk) -> None:
        utt = self._utterance
        if utt is None:
            utt = self._utterance = self._start_utterance()
        if utt.failed:
            return
        if utt.converter is None:  # audio-chunk without audio-start: take the chunk's format
            utt.converter = PcmConverter(chunk.rate, chunk.width, chunk.channels)
        conv = utt.converter
        if (chunk.rate, chunk.width, chunk.channels) != (conv.rate, conv.width, conv.channels):
            raise BadAudio("audio-chunk format differs from audio-start")
        samples = conv.feed(chunk.audio or b"")
        utt.samples += samples.shape[0]
        if utt.samples > self.config.max_audio_seconds * SAMPLE_RATE:
            raise TooLarge(
                f"utterance longer than {self.config.max_audio_seconds:.0f} s; audio dropped"
            )
        utt.chunks.append(samples)

    async def _finish(self, utt: Utterance) -> None:
        if utt.converter is not None:
            utt.chunks.append(utt.converter.flush())
        samples = np.concatenate(utt.chunks) if utt.chunks else np.zeros(0, np.float32)
        utt.chunks.clear()
        text, language = "", utt.language or ""
        if samples.shape[0] > 0:
            options = self.engine.options(
                language=utt.language,
                hotwords=utt.hotwords,
                vad_filter=self.config.vad_filter,
            )
            with self.engine.admit(utt.model):
                result = await self.engine.transcribe(samples, options, utt.model)
            text, language = result.text, result.language
        _LOGGER.info("Transcript (%s, %.2f s): %s", utt.model, samples.shape[0] / SAMPLE_RATE, text)
        await self.write_event(Transcript(text=text, language=language or None).event())
