"""Whisper's encoder window fitted to the audio, with a guard that never keeps a worse decode.

faster-whisper pads every window to 30 s of log-Mel features (``pad_or_trim`` in
``WhisperModel.generate_segments`` and ``detect_language``), so a 2 s voice command pays for a 30 s
encoder pass, most of a short request's cost. CTranslate2's encoder takes shorter input and costs
about in proportion. ``FittedWhisperModel`` encodes a window only as long as its audio plus a
margin, and decodes it with a token cap that follows the audio's duration. When that decode looks
degenerate (no end of text before the cap, repetitive, improbable, too long for its duration, or
timestamps past the audio), the window is encoded at the full 30 s and decoded exactly as the
library would have, and the fallback is counted.

A model told no language pays faster-whisper for the opening window twice: ``transcribe``
encodes it to detect the language (``detect_language``, with one frame more than the window
holds) and ``generate_segments`` encodes it again. Here the detection sees the window's own
frames and the window reuses its encoding (base, 30 s window: 1.1 s less a request); with
``--encoder-window full`` (``FULL_WINDOW``) that reuse is all the class changes.

It relies on faster-whisper's internals: it overrides two methods that ``generate_segments`` calls
per window, ``encode`` and ``generate_with_fallback`` (and wraps ``generate_segments``, which
``transcribe`` calls once, to know the opening window, and ``detect_language``, which it calls
before), and relies on the features handed to
``encode`` being zero-padded by ``pad_or_trim`` (real log-Mel frames are never all zeros: they are
at least -1.5 after Whisper's normalisation of silence). faster_whisper_internals.py holds the
range of versions this was read against and checks it (``window_problems``): a test fails loudly
after an upgrade, and at run time the server then falls back to the full window.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from faster_whisper import WhisperModel

from ..errors import Abandoned
from ..words import alike, keys
from .faster_whisper_internals import window_problems
from .long_form import loops

_LOGGER = logging.getLogger(__name__)

FRAMES_PER_SECOND = 100  # log-Mel frames (hop 160 at 16 kHz)
FULL_FRAMES = 3000  # Whisper's 30 s window


@dataclass(frozen=True)
class Fit:
    """How a window shorter than 30 s is fitted: audio + ``margin`` seconds, at least ``floor``.

    Chosen by measurement on real speech (docs/encoder-window.md): with less margin, or a
    window under about 10 s, the decoder loops or drops words more often; the guard catches
    most of it, at the price of a second decode.
    """

    margin: float = 4.0
    floor: float = 10.0
    wider: float = 1.5  # a degenerate decode is redone in a window this much longer, when
    wider_max: float = 20.0  # that is at most this long (then still cheaper than 30 s)
    tokens_per_second: float = 10.0  # decode cap: above the speech rate of fast talkers, so
    tokens_base: int = 8  # that a looping decode stops early (it is redone at 30 s anyway)
    words_per_second: float = 6.0  # faster than anyone speaks: a decode that says more invents

    def frames(self, content_frames: int) -> int:
        """The encoder input length for ``content_frames`` of audio (even: the conv stride)."""
        seconds = max(content_frames / FRAMES_PER_SECOND + self.margin, self.floor)
        frames = math.ceil(seconds * FRAMES_PER_SECOND / 2) * 2
        return min(frames, FULL_FRAMES)

    def widened(self, frames: int) -> int | None:
        """The window a degenerate decode of ``frames`` is redone in before 30 s, or None."""
        wide = math.ceil(frames * self.wider / 2) * 2
        return wide if wide <= self.wider_max * FRAMES_PER_SECOND else None

    def attempts(self, frames: int) -> tuple[int, ...]:
        """The shortened windows a decode of ``frames`` is tried in, in order, before 30 s: the
        fitted one, then a wider one (taken only when the first decode looped)."""
        wide = self.widened(frames)
        return (frames,) if wide is None else (frames, wide)

    def max_tokens(self, seconds: float) -> int:
        return int(self.tokens_base + self.tokens_per_second * seconds)


# ``--encoder-window full``: every window at 30 s, as the library encodes it.
FULL_WINDOW = Fit(floor=FULL_FRAMES / FRAMES_PER_SECOND)


def content_frames(features: np.ndarray) -> int:
    """Frames before the zero padding that ``pad_or_trim`` appended (all of them if none)."""
    frames = features.reshape(-1, features.shape[-1])
    nonzero = np.flatnonzero(np.any(frames != 0.0, axis=0))
    return int(nonzero[-1]) + 1 if nonzero.size else 0


def stutters(text: str) -> bool:
    """Whether the text says something again at once: a word or two three times in a row ("1, 1,
    1,", "Yes, yes, yes."), or three words or more twice ("8. The Press Yard 8. The Press Yard").
    A decoder that lost its place in a short window does this on a one-word command; speech
    rarely does, and when it does the 30 s window only costs time."""
    said = keys(text)
    for n in range(1, len(said) // 2 + 1):
        times = 3 if n < 3 else 2
        for i in range(len(said) - n * times + 1):
            if all(said[i : i + n] == said[i + k * n : i + (k + 1) * n] for k in range(1, times)):
                return True
    return False


def said_twice(text: str, longest: int = 15) -> bool:
    """Whether the text says one phrase of two words or more twice in a row, the second time
    perhaps a little differently ("Switch off the Vasselhoff porch light, Swich off the
    Vasselhoff porch light"; ``words.alike``): a decoder prompted with names (hotwords) in a
    short window says a short command again after the speech ended. ``stutters`` sees only exact
    repeats; phrases of up to ``longest`` words (a command) are compared."""
    said = keys(text)
    for n in range(2, min(longest, len(said) // 2) + 1):
        for start in range(len(said) - 2 * n + 2):
            first = said[start : start + n]
            for m in (n - 1, n, n + 1):
                second = said[start + n : start + n + m]
                if m < 2 or len(second) < m:
                    continue
                # cheap first: most words of a repeat recur ("swich" is the odd one out)
                if 2 * len(set(first) & set(second)) < max(len(set(first)), len(set(second))):
                    continue
                if len("".join(first)) >= 8 and alike(first, second):
                    return True
    return False


CAPPED = "no end of text before the cap"
REPEATED = "repeated n-grams"
STUTTERED = "repeated words"
SAID_TWICE = "a phrase said twice"
COMPRESSED = "compression ratio"
# The decoder lost its place: what a window of another length often does not do (redone in a
# wider window before 30 s). An improbable or silent decode is the audio's, not the window's:
# on 200 espeak one- and two-word commands the wider window mended 4 of 8 stutters but only 18
# of 60 improbable decodes and 1 of 13 silent ones, and paid for itself only on the stutters.
LOOPS = frozenset({CAPPED, REPEATED, STUTTERED, SAID_TWICE, COMPRESSED})
PAST_WINDOW = "timestamps past the window"
IMPROBABLE = "low log-probability"
# A shortened window of a one-word command is often judged silence where the 30 s window is not
# (tiny.en: " one." for an espeak "One.", no-speech probability 0.66, log-probability -1.04):
# the command would vanish, so the opening window's call is left to the 30 s window.
SILENT = "silence in a shortened opening window"
# What a live decode's audio, cut off mid-speech, normally looks like; loops are never taken.
LIVE_TOLERATES = frozenset({PAST_WINDOW, IMPROBABLE, SILENT})


def degenerate(
    *,
    tokens: list[int],
    text: str,
    avg_logprob: float,
    compression_ratio: float,
    no_speech_prob: float,
    seconds: float,
    window: float,
    cap: int,
    timestamp_begin: int,
    options: Any,
    fit: Fit,
    opening: bool = False,
) -> str | None:
    """Why a decode of a shortened window cannot be trusted, or None when it can (``opening``:
    the window holds the start of the audio)."""
    improbable = options.log_prob_threshold is not None and avg_logprob < options.log_prob_threshold
    silent = (
        improbable
        and options.no_speech_threshold is not None
        and no_speech_prob > options.no_speech_threshold
    )
    if silent:  # generate_segments drops the window as silence, as the library would for a
        # tail that an earlier window covered; the opening window's call is the 30 s window's
        return SILENT if opening and window < FULL_FRAMES / FRAMES_PER_SECOND else None
    if len(tokens) >= cap:
        return CAPPED
    text_tokens = [t for t in tokens if t < timestamp_begin]
    if loops(text_tokens):
        return REPEATED
    if stutters(text):
        return STUTTERED
    if said_twice(text):
        return SAID_TWICE
    threshold = options.compression_ratio_threshold
    if threshold is not None and compression_ratio > threshold:
        return COMPRESSED
    if improbable:
        return IMPROBABLE
    if len(text.split()) > 2 + fit.words_per_second * seconds:
        return "too long for the audio"
    stamps = [t - timestamp_begin for t in tokens if t >= timestamp_begin]
    if stamps and max(stamps) * 0.02 > window:
        return PAST_WINDOW
    return None


def _give_up(token: Any, why: str, seconds: float) -> None:
    """Raise Abandoned rather than decode a 30 s window for a decode nobody waits for (cancelled)
    or for a hypothesis (a live decode: not worth the 30 s pass)."""
    if token is not None and token.cancelled:
        raise Abandoned(f"{why} in a {seconds:.2f} s window; cancelled")
    if token is not None and token.live:
        raise Abandoned(f"{why} in a {seconds:.2f} s window of a live decode")


@dataclass
class Decode:
    """One decode's context on its worker thread: faster-whisper's ``transcribe`` hands nothing
    of ours down to the per-window methods, so they find the decode's ``CancelToken`` here, count
    its fallbacks here, and pass the window being fitted from ``encode`` to its decode."""

    token: Any = None  # backends/base.py's CancelToken, or None
    fallbacks: int = 0  # windows redone wider or at 30 s
    opening: bool = True  # the next window holds the start of the audio
    padded: np.ndarray | None = None  # the 30 s features of the window just encoded shorter
    content: int = 0  # ... its frames of audio
    frames: int = 0  # ... and the frames it was encoded at
    detecting: bool = False  # the language is being detected on the opening window ...
    detected: Encoded | None = None  # ... whose encoding the window's decode then reuses


@dataclass(frozen=True)
class Encoded:
    """A window's encoding, as ``encode`` left it: kept from the language detection for the
    opening window, which faster-whisper would encode again."""

    features: np.ndarray
    output: Any
    padded: np.ndarray | None
    content: int
    frames: int


def fitted_model_class() -> type[FittedWhisperModel] | None:
    """``FittedWhisperModel``, or None (with a warning) when faster-whisper broke the contract."""
    problems = window_problems()
    if problems:
        _LOGGER.warning(
            "Encoder window: using the full 30 s window, the installed faster-whisper differs "
            "from the one this was checked against: %s",
            "; ".join(problems),
        )
        return None
    return FittedWhisperModel


class FittedWhisperModel(WhisperModel):
    """WhisperModel whose windows shorter than 30 s are encoded at their own length, and whose
    opening window is encoded once when the language is detected on it.

    A window is tried in ``Fit.attempts``: the fitted length, then (for a decoder that lost its
    place) half again as long, then the library's 30 s (``FULL_WINDOW``: always 30 s). Decode
    inside ``decoding()`` to give the decode a CancelToken and read its fallbacks.
    """

    def __init__(self, *args: Any, fit: Fit | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fit = fit or Fit()
        self._local = threading.local()  # one decode per worker thread at a time

    @contextmanager
    def decoding(self, token: Any = None) -> Iterator[Decode]:
        """The context of one decode on this thread (consume its segments inside it)."""
        decode, previous = Decode(token), getattr(self._local, "decode", None)
        self._local.decode = decode
        try:
            yield decode
        finally:
            self._local.decode = previous

    def _decode(self) -> Decode:
        """This thread's decode (a decode begun outside ``decoding()`` gets one of its own)."""
        decode: Decode | None = getattr(self._local, "decode", None)
        if decode is None:
            decode = self._local.decode = Decode()
        return decode

    def generate_segments(self, *args: Any, **kwargs: Any) -> Any:
        self._decode().opening = True
        yield from super().generate_segments(*args, **kwargs)

    def detect_language(
        self, audio: Any = None, features: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        """faster-whisper's, on the frames the opening window will hold (``transcribe`` hands
        it one frame more: the padding's), so that window's decode reuses the detection's
        encoding instead of encoding it again (base, 30 s window: 1.1 s a request)."""
        if audio is not None or features is None or features.shape[-1] < 2:
            return super().detect_language(audio, features, *args, **kwargs)
        decode = self._decode()
        decode.detecting = True
        try:
            return super().detect_language(None, features[..., :-1], *args, **kwargs)
        finally:
            decode.detecting = False

    def encode(self, features: np.ndarray) -> Any:
        decode = self._decode()
        detected, decode.detected = decode.detected, None
        if detected is not None and np.array_equal(detected.features, features):
            decode.padded, decode.content, decode.frames = (
                detected.padded, detected.content, detected.frames
            )  # fmt: skip
            return detected.output
        decode.padded = None
        output = self._encode(decode, features)
        if decode.detecting:
            decode.detected = Encoded(
                features, output, decode.padded, decode.content, decode.frames
            )
        return output

    def _encode(self, decode: Decode, features: np.ndarray) -> Any:
        """The window at its fitted length when it is shorter than 30 s (noted in ``decode``
        for ``generate_with_fallback``), else as it comes."""
        if features.shape[-1] == FULL_FRAMES and features.ndim == 2:
            content = content_frames(features)
            frames = self.fit.frames(content)
            if frames < FULL_FRAMES:
                decode.padded, decode.content, decode.frames = features, content, frames
                return super().encode(np.ascontiguousarray(features[:, :frames]))
        return super().encode(features)

    def generate_with_fallback(
        self, encoder_output: Any, prompt: list[int], tokenizer: Any, options: Any
    ) -> Any:
        decode = self._decode()
        padded, decode.padded = decode.padded, None
        opening, decode.opening = decode.opening, False
        if padded is None:
            return super().generate_with_fallback(encoder_output, prompt, tokenizer, options)
        token = decode.token
        seconds = decode.content / FRAMES_PER_SECOND
        cap = self.fit.max_tokens(seconds)
        if options.max_new_tokens is not None:
            cap = min(cap, options.max_new_tokens)
        cap = min(cap, self.max_length - len(prompt))
        short = dataclasses.replace(
            options, temperatures=list(options.temperatures[:1]), max_new_tokens=cap
        )
        why: str | None = None
        text = ""
        for frames in self.fit.attempts(decode.frames):
            if frames != decode.frames:
                if why not in LOOPS:
                    break
                # The decoder loses its place in one window length and not in another (tiny.en:
                # "1, 1, 1, 1" for english.wav's "one" at 10 s, "1." at 12, 15 and 20 s): a
                # window half again as long costs half of the 30 s pass or less.
                encoder_output = super().encode(np.ascontiguousarray(padded[:, :frames]))
                if token is not None and token.cancelled:  # overtaken (live) goes on: the
                    _give_up(token, why or "", seconds)  # decode costs little once encoded
            decoded = super().generate_with_fallback(encoder_output, prompt, tokenizer, short)
            why, text = self._judge(
                decoded,
                tokenizer,
                options,
                seconds,
                frames / FRAMES_PER_SECOND,
                cap,
                token,
                opening,
            )
            if why is None:
                decode.fallbacks += int(frames != decode.frames)
                return decoded
            _give_up(token, why, seconds)
        full = super().encode(padded)
        _give_up(token, why or "", seconds)  # cancelled or overtaken while the 30 s window encoded
        if token is not None and token.speculative:
            # A 30 s decode that loops costs seconds (base: 10 s for a 1.8 s pause between
            # words), and background work holds the worker the final answer is waiting for:
            # one decode at temperature 0 under the same cap, kept only when it passes the
            # same checks, which is then what the library's own first try gives.
            retry = super().generate_with_fallback(full, prompt, tokenizer, short)
            again, _ = self._judge(
                retry, tokenizer, options, seconds, FULL_FRAMES / FRAMES_PER_SECOND, cap, token,
                opening,
            )  # fmt: skip
            if again is None:
                decode.fallbacks += 1
                return retry
            _LOGGER.debug("Encoder window: %.2f s of audio, %s; abandoned", seconds, again)
            raise Abandoned(f"{again} in a {seconds:.2f} s window, also at 30 s")
        _LOGGER.debug(  # why: the last shortened decode's (the wider one's, if tried)
            "Encoder window: %.2f s of audio, %s (last shortened decode: %r); decoding it at 30 s",
            seconds,
            why,
            text,
        )
        decode.fallbacks += 1
        return super().generate_with_fallback(full, prompt, tokenizer, options)

    def _judge(
        self,
        decoded: Any,
        tokenizer: Any,
        options: Any,
        seconds: float,
        window: float,
        cap: int,
        token: Any,
        opening: bool,
    ) -> tuple[str | None, str]:
        """Why ``decoded`` cannot be kept (None when it can; a live decode tolerates what
        audio cut off mid-speech looks like), and its text."""
        result, avg_logprob, _, compression_ratio = decoded
        tokens = result.sequences_ids[0]
        text = tokenizer.decode(tokens)
        why = degenerate(
            tokens=tokens,
            text=text,
            avg_logprob=avg_logprob,
            compression_ratio=compression_ratio,
            no_speech_prob=result.no_speech_prob,
            seconds=seconds,
            window=window,
            cap=cap,
            timestamp_begin=tokenizer.timestamp_begin,
            options=options,
            fit=self.fit,
            opening=opening,
        )
        if why in LIVE_TOLERATES and token is not None and token.live:
            return None, text
        return why, text
