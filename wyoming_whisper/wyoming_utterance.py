"""Wyoming utterances: opened from a transcribe request, answered with transcript-start,
transcript-chunks, transcript and transcript-stop.

The words confirmed while the speaker talks go out as transcript-chunks (``streaming.LiveText``
keeps what was sent); at audio-stop the rest of the final follows, or, with nothing sent live,
the final's segments as the decode firms them up. The transcript is then what Home Assistant
understands (``AssistCommands.answer``). The handler (wyoming_handler.py) owns the connection
and its events; this owns what an utterance is and what it says on the connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.event import Event

from .audio import PcmConverter
from .backends.base import Result, Segment
from .commands.home import Home
from .engine import Engine
from .request import build_request
from .streaming import ENDPOINT_SECONDS, LiveText, Partial, Stream, StreamSettings
from .transcript_chunks import ChunkText

_LOGGER = logging.getLogger(__name__)
Write = Callable[[Event], Awaitable[None]]
# Awaits a decode while watching the connection: a hang-up cancels it (the handler's).
UnlessGone = Callable[["asyncio.Future[Result]"], Awaitable[Result]]


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

    @property
    def awaited(self) -> bool:
        """True while its audio is still arriving and an answer is owed: a shutdown waits.

        Once audio-stop comes the answer holds ``Admission.answering``; before it nothing is
        admitted yet, and a drain that only waited for the engine would cut the speaker off.
        """
        return not self.failed and (not self.follows_answer or self.stream.heard_speech)


class Utterances:
    """The utterances of one connection: each opened from a transcribe request (or the
    defaults), fed by the handler, answered here."""

    def __init__(self, engine: Engine, write: Write, unless_gone: UnlessGone) -> None:
        self.engine = engine
        self._write = write
        self._unless_gone = unless_gone

    def open(self, asked: Transcribe, *, follows_answer: bool = False) -> Utterance:
        """A new utterance for ``asked``; WhisperError when it cannot be served (a bad field, the
        model's queue full: refused at once, before the client streams its audio)."""
        engine = self.engine
        req = build_request(
            engine,
            model=asked.name,
            language=asked.language,
            # Home Assistant sends no names: those read from it stand in (hass_names.py).
            hotwords=[*(asked.transcript_names or []), *(asked.transcript_terms or [])]
            or engine.assist.prompt_names(),
        )
        engine.admission.check_capacity(req.model)
        endpoint: float | None = None
        if engine.config.vad_endpointing:
            sensitivity = getattr(asked.vad_sensitivity, "value", asked.vad_sensitivity)
            endpoint = ENDPOINT_SECONDS.get(str(sensitivity), ENDPOINT_SECONDS["default"])
        live = LiveText()
        stream = Stream.open(engine, req, endpoint_silence=endpoint, on_partial=live.told)
        utt = Utterance(req.model, stream, req.language, follows_answer=follows_answer, live=live)
        live.listen(self.live, utt)
        utt.home = engine.assist.home(asked.transcript_names or ())
        return utt

    def refused(self) -> Utterance:
        """The placeholder of a refused request: the rest of its audio is ignored quietly."""
        model = self.engine.config.default_model
        stream = Stream(self.engine, model, self.engine.options(), StreamSettings())
        return Utterance(model, stream, failed=True)

    async def begin(self, utt: Utterance) -> None:
        """transcript-start, once per utterance."""
        if not utt.started:
            utt.started = True
            await self._write(TranscriptStart(language=utt.language).event())

    async def live(self, utt: Utterance, partial: Partial) -> None:
        """Newly confirmed words as a transcript-chunk while the speaker talks.

        The words are recorded before the write, in the statement that writes them
        (``LiveText.take``): a write buffers its bytes before its first await, so what ``sent``
        says is what the client gets, even if the answer cancels this.
        """
        if utt.failed or not partial.delta:
            return
        await self.begin(utt)
        await self._write(TranscriptChunk(text=utt.live.take(partial)).event())

    async def answer(self, utt: Utterance) -> None:
        """The rest of the answer, from audio-stop (or the VAD's endpoint) on."""
        await self.begin(utt)
        if utt.live.sent:  # words were confirmed during speech: the rest of the final follows
            result = await self._unless_gone(asyncio.ensure_future(utt.stream.finish()))
            if tail := utt.live.rest(result.text):
                await self._write(TranscriptChunk(text=tail).event())
        else:
            result = await self._final(utt)
        language = result.language or utt.language
        # Home Assistant matches sentences exactly: a near-miss of a command is sent as the command.
        text = await self.engine.assist.answer(
            result.text, language, utt.home, utt.stream.audio(), utt.model
        )
        # What people say in their homes stays out of the log unless asked for (or debugging).
        shown = self.engine.config.log_transcripts
        _LOGGER.info(
            "Transcript (%s, %.2f s%s)%s",
            utt.model,
            utt.stream.seconds,
            ", early" if utt.stream.early_used else "",
            f": {text}" if shown else f", {len(text)} characters",
        )
        if not shown:
            _LOGGER.debug("Transcript: %s", text)
        await self._write(Transcript(text=text, language=language or None).event())
        await self._write(TranscriptStop().event())
        self.engine.metrics.requests.labels("wyoming", "ok").inc()

    async def _final(self, utt: Utterance) -> Result:
        """The final, its segments sent as transcript-chunks as the decode firms them up."""
        cutter = ChunkText()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()

        def on_segment(segment: Segment) -> None:
            pieces.put_nowait(cutter.feed(segment.text))

        async def relay() -> None:
            while (piece := await pieces.get()) is not None:
                if piece:
                    await self._write(TranscriptChunk(text=piece).event())

        relaying = asyncio.create_task(relay())
        try:
            job: asyncio.Future[Any] = asyncio.ensure_future(utt.stream.finish(on_segment))
            result = await self._unless_gone(job)
            if utt.stream.early_used:
                for segment in result.segments:
                    on_segment(segment)
        finally:
            pieces.put_nowait(None)
            await relaying
        return result
