"""Wyoming events <-> the engine: describe/info, transcribe + audio-start/chunk/stop -> transcript.

Audio goes into a ``streaming.Stream`` as it arrives, so a pause lets the decode start before
audio-stop (early decoding). The answer is transcript-start, transcript-chunk..., transcript,
transcript-stop, in the order the wyoming library documents; clients that only know ``transcript``
ignore the others. With --vad-endpointing the server ends utterances itself.

Events are read with our own bounded reader (framing.py) rather than the library's, so a malformed
line, an oversized declared length or a stalled client gets an ``error`` event instead of a silent
hang-up, and never touches other connections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TypeVar

from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler

from . import __version__
from .audio import PcmConverter
from .engine import Engine
from .errors import INTERNAL_MESSAGE, BadAudio, WhisperError
from .framing import (
    ClientGone,
    MalformedEvent,
    ProtocolError,
    parse,
    read_event,
    skip_line,
    unless_hung_up,
)
from .languages import model_languages
from .wyoming_utterance import Utterance, Utterances

_LOGGER = logging.getLogger(__name__)
LOGGED_FAULTS = 3  # client errors logged at WARNING per connection; the rest at DEBUG
T = TypeVar("T")
WHISPER_ATTRIBUTION = Attribution(name="OpenAI", url="https://github.com/openai/whisper")


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
        for name in engine.served
    ]
    program = AsrProgram(
        name="wyoming-whisper",
        description=f"Whisper speech-to-text ({engine.backend_name})",
        attribution=WHISPER_ATTRIBUTION,
        installed=True,
        version=__version__,
        models=models,
        supports_transcript_streaming=True,
        requires_external_vad=not engine.config.vad_endpointing,
    )
    return Info(asr=[program])


class Faults:
    """A connection's client errors: every one counted (whisper_requests_total), the first few
    logged at WARNING, the rest at DEBUG, so a client sending garbage cannot fill the log (2
    bytes a line gave 154 bytes of WARNING)."""

    def __init__(self, engine: Engine, peer: object) -> None:
        self._engine = engine
        self._peer = peer
        self._count = 0

    def note(self, text: str, code: str) -> None:
        self._count += 1
        if self._count <= LOGGED_FAULTS:
            _LOGGER.warning("Wyoming client error: %s", text)
            if self._count == LOGGED_FAULTS:
                _LOGGER.warning(
                    "Wyoming client %s: further errors on this connection are not logged "
                    "(counted in whisper_requests_total)",
                    self._peer,
                )
        else:
            _LOGGER.debug("Wyoming client error: %s", text)
        self._engine.metrics.requests.labels("wyoming", code).inc()


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
        # The next event, read while a decode runs so that a hang-up cancels the decode.
        self._lookahead: asyncio.Task[Event | None] | None = None
        self._faults = Faults(engine, writer.get_extra_info("peername"))
        self.utterances = Utterances(engine, self.write_event, self._unless_gone)
        # When it began waiting with no utterance open (None otherwise): at the port's cap the
        # oldest idle connection makes room for a new one (connections.py).
        self.idle_since: float | None = None

    async def run(self) -> None:
        """Read events until the client leaves; answer protocol faults with an error event.

        A client silent for --wyoming-idle-timeout is hung up on: mid-utterance after a
        ``timeout`` error, between utterances quietly, so idle connections hold no place.
        """
        self._is_running = True
        try:
            while self._is_running:
                reading, self._lookahead = self._lookahead, None
                if self._utterance is None:
                    self.idle_since = time.monotonic()
                try:
                    event = await asyncio.wait_for(
                        reading or read_event(self.reader), self.config.wyoming_idle_timeout
                    )
                except TimeoutError:
                    if self._utterance is not None:
                        await self._drop_utterance()
                        await self._error(
                            "no audio received for too long; utterance dropped", "timeout"
                        )
                    break
                except ProtocolError as err:
                    await self._error(f"malformed event: {err}", "bad-event")
                    if err.fatal or (err.skip_line and not await skip_line(self.reader)):
                        break
                    continue
                self.idle_since = None
                if event is None or not await self.handle_event(event):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if self._lookahead is not None:
                self._lookahead.cancel()
            await self._drop_utterance()
            await self.disconnect()
            self.writer.close()

    async def write_event(self, event: Event) -> None:
        try:
            await async_write_event(event, self.writer)
        except (ConnectionError, RuntimeError):  # the client is gone; nothing left to tell it
            self._is_running = False

    async def _error(self, text: str, code: str, param: str | None = None) -> None:
        """Tell the client; ``param`` names the field at fault, as OpenAI's error body does
        (an extra key of the ``error`` event's data: the wyoming library reads past it)."""
        self._faults.note(text, code)
        event = Error(text=text, code=code).event()
        if param:
            event.data["param"] = param
        await self.write_event(event)

    async def _drop_utterance(self) -> None:
        """Forget the open utterance and cancel its background decodes."""
        utt, self._utterance = self._utterance, None
        if utt is not None:
            await utt.stream.close()

    @property
    def mid_utterance(self) -> bool:
        """True while an utterance's audio is still arriving (``Utterance.awaited``)."""
        return self._utterance is not None and self._utterance.awaited

    async def handle_event(self, event: Event) -> bool:
        """Dispatch one event; a fault becomes an ``error`` event, never a dropped server.

        When the fault is the answer to ``audio-stop`` the connection is closed after the error:
        clients such as Home Assistant read until a transcript or the end of the connection, so
        an open connection would leave them waiting. Other faults keep the connection open.
        """
        try:
            await self._dispatch(event)
        except ClientGone:
            _LOGGER.info("Wyoming client left during its decode; decode cancelled")
            self.engine.metrics.requests.labels("wyoming", "cancelled").inc()
            self._is_running = False
        except WhisperError as err:
            if self._utterance is not None:
                self._utterance.failed = True
                await self._utterance.stream.close()
            await self._error(err.message, err.code or "error", err.param)
            self._close_if_answering(event)
        except MalformedEvent as err:
            await self._error(str(err), "bad-event")
            self._close_if_answering(event)
        except Exception:
            _LOGGER.exception("Unexpected error handling %s", event.type)
            await self._drop_utterance()
            await self._error(INTERNAL_MESSAGE, "internal-error")
            self._close_if_answering(event)
        return self._is_running

    def _close_if_answering(self, event: Event) -> None:
        if AudioStop.is_type(event.type):
            self._is_running = False

    async def _dispatch(self, event: Event) -> None:
        if Describe.is_type(event.type):
            await self.write_event(build_info(self.engine).event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=parse(Ping, event).text).event())
        elif Transcribe.is_type(event.type):
            self._pending = parse(Transcribe, event)
            await self._drop_utterance()
            self._start_utterance()
        elif AudioStart.is_type(event.type):
            start = parse(AudioStart, event)
            current = self._utterance or self._start_utterance()
            if not current.failed:
                current.converter = PcmConverter(start.rate, start.width, start.channels)
        elif AudioChunk.is_type(event.type):
            await self._on_chunk(parse(AudioChunk, event))
        elif AudioStop.is_type(event.type):
            done, self._utterance, self._pending = self._utterance, None, None
            if done is None:
                raise BadAudio("audio-stop without any audio")
            if done.failed:
                # The error was sent when the fault happened; end the exchange (see above).
                self._is_running = False
                return
            if done.converter is not None:
                await done.stream.convert(done.converter.flush)
            if done.follows_answer and not done.stream.heard_speech:
                await done.stream.close()  # only the tail of an utterance already answered
                return
            await self._finish(done)

    def _start_utterance(self, *, follows_answer: bool = False) -> Utterance:
        """A new utterance using the last transcribe request (or the defaults)."""
        try:
            utt = self.utterances.open(self._pending or Transcribe(), follows_answer=follows_answer)
        except WhisperError:
            self._utterance = self.utterances.refused()
            raise
        self._utterance = utt
        return utt

    async def _on_chunk(self, chunk: AudioChunk) -> None:
        utt = self._utterance
        if utt is None:
            utt = self._start_utterance()
        if utt.failed:
            return
        if utt.converter is None:  # audio-chunk without audio-start: take the chunk's format
            utt.converter = PcmConverter(chunk.rate, chunk.width, chunk.channels)
        conv = utt.converter
        if (chunk.rate, chunk.width, chunk.channels) != (conv.rate, conv.width, conv.channels):
            # Every chunk names its own format, and the wyoming library's own servers convert
            # chunk by chunk: follow the chunk rather than refuse it.
            await utt.stream.convert(conv.flush)
            conv = utt.converter = PcmConverter(chunk.rate, chunk.width, chunk.channels)
        await utt.stream.feed(conv, chunk.audio or b"")
        if utt.stream.heard_speech and utt.stream.on_partial is not None:
            await self.utterances.begin(utt)  # with live text: transcript-start as speech starts
        if utt.stream.endpoint_reached:
            # --vad-endpointing: answer now; what follows is the next utterance.
            _LOGGER.debug("VAD endpoint after %.2f s", utt.stream.seconds)
            self._utterance = None
            try:
                await self._finish(utt)
            except WhisperError as err:
                await self._error(err.message, err.code or "error", err.param)
            nxt = self._start_utterance(follows_answer=True)
            nxt.converter = PcmConverter(conv.rate, conv.width, conv.channels)

    async def _finish(self, utt: Utterance) -> None:
        """Answer one utterance: transcript-start, chunks as text firms up, transcript, stop."""
        with self.engine.admission.answering():  # a shutdown waits for the whole answer
            await self.utterances.answer(utt)

    async def _unless_gone(self, job: asyncio.Future[T]) -> T:
        """Await ``job`` while watching the connection: a hang-up cancels it (ClientGone).

        The next event is read ahead; one that arrives in time is kept for the read loop.
        """
        if self._lookahead is None:
            self._lookahead = asyncio.ensure_future(read_event(self.reader))
        return await unless_hung_up(job, self._lookahead)
