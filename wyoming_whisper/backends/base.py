"""The backend interface and the plain result types every front door formats at its edge.

Backends never import aiohttp or wyoming; front doors never import a backend.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

import numpy as np

SAMPLE_RATE = 16000
# Whisper's temperature fallback schedule, as in the reference implementation and faster-whisper.
FALLBACK_TEMPERATURES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# Whisper's decoder holds 448 tokens and gives a prompt at most half of them.
PROMPT_TOKEN_BUDGET = 448 // 2 - 1


def names_prompt(
    phrases: tuple[str, ...], cost: Callable[[str], int], budget: int = PROMPT_TOKEN_BUDGET
) -> str | None:
    """Whole phrases, in priority order, while they fit ``budget`` tokens (``cost``: a text's
    tokens, with its leading space), joined with commas and ended with a full stop.

    Whisper keeps the end of a prompt that is too long, so without a budget the first (most
    important) names are the ones lost. The full stop makes the decoder start a sentence rather
    than continue the list (without it tiny.en ended 82 of 180 spoken commands with a comma,
    began some in lower case and said some twice).
    """
    kept: list[str] = []
    used = 0
    for phrase in (p.strip() for p in phrases):
        if not phrase:
            continue
        spent = cost(" " + phrase) + (1 if kept else 0)  # (and the comma before it)
        if used + spent > budget - 1:  # (and the full stop)
            break
        kept.append(phrase)
        used += spent
    return ", ".join(kept) + "." if kept else None


def decoding_language(language: str | None, multilingual: bool) -> str | None:
    """The language a decode is told: an English-only model is always told English (the
    request was checked against the model before, by ``languages.check_language``)."""
    return language if multilingual else "en"


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    probability: float = 0.0


@dataclass(frozen=True)
class Segment:
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: tuple[int, ...] = ()
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Result:
    """A finished transcription: the text is the segments' texts joined and stripped."""

    text: str
    language: str
    duration: float
    segments: tuple[Segment, ...] = ()
    language_probability: float = 0.0
    task: Literal["transcribe", "translate"] = "transcribe"
    # Windows whose fitted (shortened) encoder decode was degenerate and redone at 30 s.
    encoder_fallbacks: int = 0

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]


@dataclass(frozen=True)
class TranscribeOptions:
    """What a client may ask of one decode; defaults match faster-whisper's own."""

    language: str | None = None
    task: Literal["transcribe", "translate"] = "transcribe"
    initial_prompt: str | None = None
    hotwords: tuple[str, ...] = ()  # phrases to bias towards, most important first
    temperature: tuple[float, ...] = FALLBACK_TEMPERATURES
    beam_size: int = 5
    word_timestamps: bool = False
    vad_filter: bool = False
    condition_on_previous_text: bool = True


OnSegment = Callable[[Segment], None]


class Score(NamedTuple):
    """How well one text fits the audio (a scorer's answer): its tokens' summed
    log-probability, and how many tokens."""

    logprob: float
    tokens: int


# Candidate transcripts -> how well each fits the audio a scorer was made for.
Scorer = Callable[[list[str]], list[Score]]


@dataclass
class CancelToken:
    """Set by the engine when the client is gone; a backend checks it between segments.

    ``speculative`` marks background work whose result may never be used (early decodes,
    partials): a backend may raise ``errors.Abandoned`` rather than start a costly second pass,
    which would hold a worker that the final answer needs.
    """

    event: threading.Event = field(default_factory=threading.Event)
    speculative: bool = False
    # A live decode: its audio ends mid-speech, so a timestamp past the end or an unsure last
    # word is what Whisper makes of words still coming, not a sign of a broken decode (the
    # agreement of two decodes filters guesses; loops are still abandoned, never decoded again).
    # Set while running when an early decode is overtaken by new speech and becomes one.
    live: bool = False

    def cancel(self) -> None:
        self.event.set()

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()


class LoadedModel(Protocol):
    """A model in memory. ``transcribe`` blocks and is only ever called from the worker pool."""

    @property
    def is_multilingual(self) -> bool: ...

    def transcribe(
        self,
        audio: np.ndarray,
        options: TranscribeOptions,
        on_segment: OnSegment | None = None,
        cancel: CancelToken | None = None,
    ) -> Result:
        """Decode 16 kHz mono float32 audio; call ``on_segment`` as each segment is final."""
        ...

    def scorer(self, audio: np.ndarray, language: str | None) -> Scorer | None:
        """The audio encoded once, and a function that gives each of a few candidate
        transcripts its log-probability given it (which one was said); blocks. None when this
        backend cannot tell."""
        ...

    def unload(self) -> None:
        """Free the model's memory (host and device)."""
        ...


class Backend(Protocol):
    """Loads models of one kind (faster-whisper, mlx); the server never knows which one runs."""

    name: str
    # "auto": windows shorter than 30 s are encoded at their own length; "full": always 30 s.
    encoder_window: str

    def resolve(self, name: str, cache_dir: Path | None = None) -> str:
        """Turn a model name into what ``load`` takes, downloading it if needed; blocks.

        Raises ModelResolutionError naming every place looked.
        """
        ...

    def load(self, model_path: str) -> LoadedModel:
        """Load a resolved model (a directory or a repository id); blocks, runs in a thread."""
        ...
