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
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler

from . import __version__
from .audio import PcmConverter
from .backends.base import Result, Segment
from .commands.home import Home
from .engine import Engine
from .errors import INTERNAL_MESSAGE, BadAudio, WhisperError
from .framing import MalformedEvent, ProtocolError, hung_up, parse, read_event
from .languages import model_languages
from .request import build_request
from .streaming import ENDPOINT_SECONDS, LiveText, Partial, Stream, StreamSettings
from .transcript_chunks import ChunkText

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
        for name in engine.manager.models
    ]
    program = AsrProgram(
        name="wyoming-whisper",
        description=f"Whisper speech-to-text ({engine.manager.backend.name})",
        attribution=WHISPER_ATTRIBUTION,
        installed=True,
        version=__version__,
        models=models,
        supports_transcript_streaming=True,
        requires_external_vad=not engine.config.vad_endpointing,
    )
    return Info(asr=[program])


@dataclass
class Utterance:
    """What one transcribe ... audio-stop exchange has gathered so far."""

    model: str
    stream: Stream
    language: str | None = None
    converter: PcmConverter | None = None
    failed: bool = False  # an error was already sent; ignore audio until audio-stop
    follows_answer: bool = False  # opened by VAD endpointing right after an answered one
    started: bool = False  # transcript-start sent
    live: LiveText = field(default_factory=LiveText)  # confirmed words sent as transcript-chunks
    home: Home = field(default_factory=Home)  # names its commands are matched against


class ClientGone(Exception):
    """The client hung up while its utterance was being decoded; the decode was cancelled."""


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
        self._faults = 0  # client errors on this connection (only the first few are logged)
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
                    if err.fatal or (err.skip_line and not await self._skip_line()):
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

    async def _skip_line(self) -> bool:
        """Read past the rest of a garbage line; False when the connection cannot go on."""
        try:
            await self.reader.readuntil(b"\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return False
        return True

    async def write_event(self, event: Event) -> None:
        try:
            await async_write_event(event, self.writer)
        except (ConnectionError, RuntimeError):  # the client is gone; nothing left to tell it
            self._is_running = False

    async def _error(self, text: str, code: str) -> None:
        """Tell the client; log the first few faults of a connection only (all are counted), so
        a client sending garbage cannot fill the log (2 bytes a line gave 154 bytes of WARNING)."""
        self._faults += 1
        if self._faults <= LOGGED_FAULTS:
            _LOGGER.warning("Wyoming client error: %s", text)
            if self._faults == LOGGED_FAULTS:
                _LOGGER.warning(
                    "Wyoming client %s: further errors on this connection are not logged "
                    "(counted in whisper_requests_total)",
                    self.writer.get_extra_info("peername"),
                )
        else:
            _LOGGER.debug("Wyoming client error: %s", text)
        self.engine.metrics.requests.labels("wyoming", code).inc()
        await self.write_event(Error(text=text, code=code).event())

    async def _drop_utterance(self) -> None:
        """Forget the open utterance and cancel its background decodes."""
        utt, self._utterance = self._utterance, None
        if utt is not None:
            await utt.stream.close()

    @property
    def mid_utterance(self) -> bool:
        """True while an utterance's audio is still arriving: a shutdown waits for its answer.

        Once audio-stop comes the answer holds ``Engine.answering``; before it nothing is
        admitted yet, and a drain that only waited for the engine would cut the speaker off.
        """
        utt = self._utterance
        if utt is None or utt.failed:
            return False
        return not utt.follows_answer or utt.stream.heard_speech

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
            await self._error(err.message, err.code or "error")
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
        asked = self._pending or Transcribe()
        try:
            req = build_request(
                self.engine,
                model=asked.name,
                language=asked.language,
                # Home Assistant sends no names: those read from it stand in (hass_names.py).
                hotwords=[*(asked.transcript_names or []), *(asked.transcript_terms or [])]
                or self.engine.assist.prompt_names(),
            )
            # Refuse at once when the queue is full, before the client streams its audio.
            self.engine.admission.check_capacity(req.model)
        except WhisperError:
            # Keep a failed placeholder: the rest of this utterance's audio is ignored quietly.
            model = self.config.default_model
            stream = Stream(self.engine, model, self.engine.options(), StreamSettings())
            self._utterance = Utterance(model, stream, failed=True)
            raise
        endpoint: float | None = None
        if self.config.vad_endpointing:
            sensitivity = getattr(asked.vad_sensitivity, "value", asked.vad_sensitivity)
            endpoint = ENDPOINT_SECONDS.get(str(sensitivity), ENDPOINT_SECONDS["default"])
        live = LiveText()
        stream = Stream.open(self.engine, req, endpoint_silence=endpoint, on_partial=live.told)
        utt = Utterance(req.model, stream, req.language, follows_answer=follows_answer, live=live)
        live.listen(functools.partial(self._live, utt))
        utt.home = self.engine.assist.home(asked.transcript_names or ())
        self._utterance = utt
        return utt

    async def _begin(self, utt: Utterance) -> None:
        """transcript-start, once per utterance."""
        if not utt.started:
            utt.started = True
            await self.write_event(TranscriptStart(language=utt.language).event())

    async def _live(self, utt: Utterance, partial: Partial) -> None:
        """Newly confirmed words as a transcript-chunk while the speaker talks.

        The words are recorded before the write, in the statement that writes them
        (``LiveText.take``): a write buffers its bytes before its first await, so what ``sent``
        says is what the client gets, even if the answer cancels this.
        """
        if utt.failed or not partial.delta:
            return
        await self._begin(utt)
        await self.write_event(TranscriptChunk(text=utt.live.take(partial)).event())

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
            await self._begin(utt)  # with live text: transcript-start as speech starts
        if utt.stream.endpoint_reached:
            # --vad-endpointing: answer now; what follows is the next utterance.
            _LOGGER.debug("VAD endpoint after %.2f s", utt.stream.seconds)
            self._utterance = None
            try:
                await self._finish(utt)
            except WhisperError as err:
                await self._error(err.message, err.code or "error")
            nxt = self._start_utterance(follows_answer=True)
            nxt.converter = PcmConverter(conv.rate, conv.width, conv.channels)

    async def _finish(self, utt: Utterance) -> None:
        """Answer one utterance: transcript-start, chunks as text firms up, transcript, stop."""
        with self.engine.admission.answering():  # a shutdown waits for the whole answer
            await self._answer(utt)

    async def _answer(self, utt: Utterance) -> None:
        await self._begin(utt)
        if utt.live.sent:  # words were confirmed during speech: the rest of the final follows
            result = await self._unless_gone(asyncio.ensure_future(utt.stream.finish()))
            if tail := utt.live.rest(result.text):
                await self.write_event(TranscriptChunk(text=tail).event())
        else:
            result = await self._stream_final(utt)
        language = result.language or utt.language
        # Home Assistant matches sentences exactly: a near-miss of a command is sent as the command.
        text = await self.engine.assist.answer(
            result.text, language, utt.home, utt.stream.audio(), utt.model
        )
        # What people say in their homes stays out of the log unless asked for (or debugging).
        _LOGGER.info(
            "Transcript (%s, %.2f s%s)%s",
            utt.model,
            utt.stream.seconds,
            ", early" if utt.stream.early_used else "",
            f": {text}" if self.config.log_transcripts else f", {len(text)} characters",
        )
        if not self.config.log_transcripts:
            _LOGGER.debug("Transcript: %s", text)
        await self.write_event(Transcript(text=text, language=language or None).event())
        await self.write_event(TranscriptStop().event())
        self.engine.metrics.requests.labels("wyoming", "ok").inc()

    async def _stream_final(self, utt: Utterance) -> Result:
        """The final, its segments sent as transcript-chunks as the decode firms them up."""
        cutter = ChunkText()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()

        def on_segment(segment: Segment) -> None:
            pieces.put_nowait(cutter.feed(segment.text))

        async def relay() -> None:
            while (piece := await pieces.get()) is not None:
                if piece:
                    await self.write_event(TranscriptChunk(text=piece).event())

        relaying = asyncio.create_task(relay())
        try:
            result = await self._unless_gone(asyncio.ensure_future(utt.stream.finish(on_segment)))
            if utt.stream.early_used:
                for segment in result.segments:
                    on_segment(segment)
        finally:
            pieces.put_nowait(None)
            await relaying
        return result

    async def _unless_gone(self, job: asyncio.Future[T]) -> T:
        """Await ``job`` while watching the connection: a hang-up cancels it (ClientGone).

        The next event is read ahead; one that arrives in time is kept for the read loop.
        """
        if self._lookahead is None:
            self._lookahead = asyncio.ensure_future(read_event(self.reader))
        watched: set[asyncio.Future[Any]] = {job, self._lookahead}
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if not job.done() and hung_up(self._lookahead):
            job.cancel()
            await asyncio.wait([job])
            raise ClientGone
        return await job
