"""The step between a transcript and Home Assistant: its names, its sentences, and the answer.

A request with names (Wyoming from Home Assistant, ``transcript_names``, HTTP with
``--hass-names-for-http``) has its transcript checked against Home Assistant's own sentences
(commands/): a near-miss of a command is answered as the command. Where the words alone are
unsure, the request's audio chooses among the near commands, scored by the backend's ``scorer``
(Whisper's decoder forced through each). The engine builds one; the doors call ``answer``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np

from .admission import Admission
from .backends.base import SAMPLE_RATE, LoadedModel, Score, Scorer
from .commands import COMMAND_SECONDS, Assist, Commands, Home, Match, choose
from .hass_names import HassNames
from .metrics import Metrics
from .models.manager import ModelManager

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
Runner = Callable[..., Awaitable[Any]]  # the engine's run_on_workers / run_audio


class AssistCommands:
    """Home Assistant's names (when read) and sentences (per language, loaded in the
    background), and ``answer``: a transcript, or the command it nearly is."""

    def __init__(
        self,
        enabled: bool,
        manager: ModelManager,
        admission: Admission,
        metrics: Metrics,
        run_on_workers: Runner,
        run_audio: Runner,
        names: HassNames | None = None,
    ) -> None:
        self.enabled = enabled
        self.names = names  # Home Assistant's names, when the server reads them
        self.sentences = Assist()  # Home Assistant's command sentences, per language
        self._manager = manager
        self._admission = admission
        self._metrics = metrics
        self._run_on_workers = run_on_workers  # the decode workers (encode, forced passes)
        self._run_audio = run_audio  # short Python work (the text match)

    def prompt_names(self) -> tuple[str, ...]:
        """Home Assistant's names for a request that brings none (empty when not read)."""
        return self.names.names if self.names is not None else ()

    def home(self, names: tuple[str, ...] | list[str] = ()) -> Home:
        """The names a request's commands are matched against: its own, else Home Assistant's."""
        if names:
            return Home.from_names(names)
        return self.names.home if self.names is not None else Home()

    async def answer(
        self,
        text: str,
        language: str | None,
        home: Home,
        audio: np.ndarray | None = None,
        model: str | None = None,
    ) -> str:
        """``text``, or the Home Assistant command it nearly is (commands/); with the request's
        ``audio`` and ``model``, the command among the near ones that the audio says. Never waits
        for the sentences to load: until they are, the words go out as heard."""
        if not self.enabled or not home or not text.strip():
            return text
        commands = self.sentences.get(language)
        if commands is None:
            return text
        if audio is None or model is None or audio.shape[0] > COMMAND_SECONDS * SAMPLE_RATE:
            match = await self._run_audio(commands.match, text, home)
        else:
            async with self._manager.use(model):  # (held until the last forced pass)
                match = await self._heard_as(commands, text, home, audio, model, language)
        self._metrics.assist_commands.labels(match.outcome).inc()
        if match.outcome == "rewritten":
            _LOGGER.debug("Heard %r, answered the command %r (%s)", text, match.text, match.intent)
        return match.text

    async def _heard_as(
        self,
        commands: Commands,
        text: str,
        home: Home,
        audio: np.ndarray,
        model: str,
        language: str | None,
    ) -> Match:
        """The command ``text`` nearly is, by its words; when they are unsure, the command among
        those near them that the audio says, or the words as heard.

        The audio is encoded and the words as heard scored on an idle worker while the words are
        matched (a third of commands need it, and then it is ready; for the rest an idle worker
        spent tens of ms), else while the near commands are found.
        """
        idle = self._admission.has_idle_worker
        listening = self._listen(model, audio, language, text) if idle else None
        match: Match = await self._run_audio(commands.match, text, home)
        if match.outcome != "heard":  # (a rewrite by the words alone is sure: its margins say so)
            return match
        listening = listening or self._listen(model, audio, language, text)
        alternatives: list[Match] = await self._run_audio(commands.alternatives, text, home, match)
        if not alternatives:
            return match
        heard = await listening
        if heard is None:
            return match
        scorer, own = heard
        scores: list[Score] = await self._run_on_workers(scorer, [a.text for a in alternatives])
        return choose(match, alternatives, [own, *scores])

    def _listen(
        self, model: str, audio: np.ndarray, language: str | None, text: str
    ) -> asyncio.Future[tuple[Scorer, Score] | None]:
        """The audio encoded for forced passes, and ``text`` scored against it, on a worker
        (None when the backend cannot score); the model held until then, even when the answer
        no longer waits for it."""

        async def listen() -> tuple[Scorer, Score] | None:
            async with self._manager.use(model) as loaded:
                heard: tuple[Scorer, Score] | None = await self._run_on_workers(
                    _scored, loaded, audio, language, text
                )
                return heard

        job = asyncio.ensure_future(listen())
        job.add_done_callback(_unheeded)
        return job


def _scored(
    loaded: LoadedModel, audio: np.ndarray, language: str | None, text: str
) -> tuple[Scorer, Score] | None:
    """Blocking: the audio encoded once, and the words as heard scored against it."""
    scorer = loaded.scorer(audio, language)
    return None if scorer is None else (scorer, scorer([text])[0])


def _unheeded(job: asyncio.Future[Any]) -> None:
    """A speculative job nobody awaited: its failure is nobody's error, only a debug line."""
    if not job.cancelled() and (err := job.exception()) is not None:
        _LOGGER.debug("Scoring the audio failed: %s", err)
