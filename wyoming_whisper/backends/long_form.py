"""Long audio cut at its pauses and decoded in batches: the pure parts (no model).

faster-whisper decodes a long recording one 30 s window after another, each window starting
where the last one's final timestamp ended (the windows overlap), and redoes a window at five
higher temperatures when its decode loops. ``long_form_decode.LongForm`` instead cuts the audio
into chunks of at most 30 s at the pauses Silero's VAD finds (``plan_chunks``), so every stretch
of speech is decoded once, and decodes them in batches. Context is kept in **lanes**
(``lanes``): the chunk list is split into a few contiguous runs, a batch holds the next chunk of
every lane, and each chunk is prompted with its own lane's text so far, as the library prompts a
window with the text before it; context is lost only where a lane starts. A decode that fails
the library's thresholds (``fails``) is redone alone at the higher temperatures, as the library
would. Measurements and the constants' choice: docs/long-form.md.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .base import SAMPLE_RATE

# Audio longer than this is decoded in batches (shorter: the library's sequential windows).
LONG_FORM_SECONDS = 60.0
# Chunks decoded at once (= lanes at most), per device: a CPU worker has one or two threads,
# where a larger batch gains little and costs context; a GPU gains from each item it adds.
BATCH = {"cpu": 2, "cuda": 16}
MIN_LANE = 2  # chunks in a lane, at least (when there are enough): fewer lanes, more context
MAX_CHUNK_SECONDS = 30.0  # Whisper's window
EDGE_SECONDS = 1.0  # the silence kept before and after a chunk's speech, at most
MAX_GAP_SECONDS = 3.0  # a longer pause always ends a chunk (its silence is not decoded)
LOOK_BACK_SECONDS = 8.0  # a chunk ends at the widest pause in its last seconds of speech
# A decode that stopped short this far into its chunk, with speech ending at least REST_MIN
# after the stop, is continued from there by the lane's next chunk.
MIN_PROGRESS_SECONDS = 1.0
REST_MIN_SAMPLES = SAMPLE_RATE // 4
# Speakers say 2 to 3 words a second of speech; a prompted decode with under one word a
# second of 5 s of speech or more is decoded again without its prompt.
MIN_WORDS_PER_SECOND = 1.0
MIN_SPARSE_SPEECH_SECONDS = 5.0
# Silero's spans: pauses of 160 ms or more (faster-whisper's batched pipeline's choice), no
# padding (the chunk's edges are added here), none longer than a chunk can hold.
VAD_OPTIONS = {
    "min_silence_duration_ms": 160,
    "speech_pad_ms": 0,
    "max_speech_duration_s": MAX_CHUNK_SECONDS - 2 * EDGE_SECONDS,
}

# A recording this long has its VAD run in two overlapping parts at once (two cores: Silero is a
# recurrent model, one window after another, 0.56 s for 254 s on one core): the second part
# starts VAD_OVERLAP_SECONDS before the middle, and its spans count from a pause both parts heard
# within half that of the middle, so its state has settled for seconds by then.
SPLIT_VAD_SECONDS = 120.0
VAD_OVERLAP_SECONDS = 10.0
VAD_WINDOW = 512  # Silero's window: the second part starts on the whole recording's grid


class VadParts(NamedTuple):
    """A long recording's VAD in two parts (samples): the first ``[0, first_end)``, the second
    ``[second_start, total)``; their spans join at a pause both heard in ``[low, high)``."""

    second_start: int
    first_end: int
    low: int
    high: int


def vad_parts(total: int) -> VadParts | None:
    """How ``total`` samples are split for the VAD; None for a recording too short to be worth
    it."""
    if total < SPLIT_VAD_SECONDS * SAMPLE_RATE:
        return None
    overlap = round(VAD_OVERLAP_SECONDS * SAMPLE_RATE / VAD_WINDOW) * VAD_WINDOW
    middle = total // 2 // VAD_WINDOW * VAD_WINDOW
    return VadParts(
        middle - overlap, middle + overlap, middle - overlap // 2, middle + overlap // 2
    )


def joined_spans(
    first: Sequence[tuple[int, int]],
    second: Sequence[tuple[int, int]],
    low: int,
    high: int,
) -> list[tuple[int, int]] | None:
    """One recording's speech spans from two parts' (``second``'s counted from the recording's
    start): the first's before a pause that both heard between ``low`` and ``high``, the
    second's after it. None when no moment there is silent in both (speech throughout)."""
    inside = sorted((s, e) for s, e in [*first, *second] if s < high and e > low)
    cut, position = None, low
    for start, end in inside:
        if start > position:
            cut = (position + start) // 2
            break
        position = max(position, end)
    if cut is None and position < high:
        cut = (position + high) // 2
    if cut is None:
        return None
    return [(s, e) for s, e in first if e <= cut] + [(s, e) for s, e in second if s >= cut]


# A batch is encoded as long as its longest chunk and this margin, never under the floor (the
# encoder window's fit, docs/encoder-window.md): a chunk's rest or a short chunk costs less.
ENCODE_MARGIN_SECONDS = 4.0
ENCODE_FLOOR_SECONDS = 10.0
FULL_FRAMES = 3000  # log-Mel frames in 30 s

# WhisperModel.transcribe's defaults, which the sequential path uses.
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6
PROMPT_RESET_ON_TEMPERATURE = 0.5
BEST_OF = 5
MAX_LENGTH = 448  # Whisper's decoder
PROMPT_TOKENS = MAX_LENGTH // 2 - 1  # the previous text and hotwords, each at most
MAX_INITIAL_TIMESTAMP_INDEX = 50  # 1 s
TIME_PRECISION = 0.02  # seconds per timestamp token


def batch_size(device: str) -> int:
    """Chunks decoded at once on ``device`` ("cpu", "cuda"; others as the CPU)."""
    return BATCH.get(device, BATCH["cpu"])


@dataclass(frozen=True)
class Chunk:
    """A stretch of the recording decoded as one window: samples ``start`` to ``end``."""

    start: int
    end: int

    @property
    def offset(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


def _split_long(spans: Sequence[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """Spans longer than ``limit`` samples cut into equal pieces that fit."""
    out: list[tuple[int, int]] = []
    for start, end in spans:
        pieces = max(1, math.ceil((end - start) / limit))
        step = (end - start) / pieces
        out += [(start + round(k * step), start + round((k + 1) * step)) for k in range(pieces)]
    return out


def plan_chunks(
    spans: Sequence[tuple[int, int]],
    total: int,
    *,
    max_seconds: float = MAX_CHUNK_SECONDS,
    edge: float = EDGE_SECONDS,
    max_gap: float = MAX_GAP_SECONDS,
    look_back: float = LOOK_BACK_SECONDS,
    begin: int = 0,
) -> list[Chunk]:
    """The chunks that cover the speech ``spans`` (samples, in order) of ``total`` samples
    from sample ``begin`` on.

    Each chunk holds whole spans and the pauses between them, plus up to ``edge`` seconds of the
    pause on either side (never past the middle of a pause), and is at most ``max_seconds``
    long. A chunk takes as many spans as fit, then ends after the span, among those ending in
    its last ``look_back`` seconds, that the widest pause follows (a sentence's end rather than a
    comma's); a pause over ``max_gap`` seconds always ends one.
    """
    rate = SAMPLE_RATE
    pad, gap_cut = round(edge * rate), max_gap * rate
    spans = _split_long(
        [(max(begin, s), min(total, e)) for s, e in spans if min(total, e) > max(begin, s)],
        round(max_seconds * rate) - 2 * pad,
    )
    if not spans:
        return []
    limit = max_seconds * rate - 2 * pad

    def gap(j: int) -> float:  # the pause after span j
        return math.inf if j + 1 == len(spans) else spans[j + 1][0] - spans[j][1]

    groups: list[tuple[int, int]] = []
    i = 0
    while i < len(spans):
        j = i
        while gap(j) <= gap_cut and spans[j + 1][1] - spans[i][0] <= limit:
            j += 1
        if gap(j) <= gap_cut:  # full: end at the widest pause near the end
            near = [k for k in range(i, j + 1) if spans[k][1] >= spans[j][1] - look_back * rate]
            j = max(near, key=lambda k: (gap(k), k))
        groups.append((i, j))
        i = j + 1

    chunks: list[Chunk] = []
    for n, (i, j) in enumerate(groups):
        if n == 0:
            start = max(begin, spans[i][0] - pad)
        else:
            before, after = spans[i - 1][1], spans[i][0]
            start = max((before + after) // 2, after - pad)
        if n + 1 == len(groups):
            end = min(total, spans[j][1] + pad)
        else:
            before, after = spans[j][1], spans[j + 1][0]
            end = min((before + after) // 2, before + pad)
        chunks.append(Chunk(start, end))
    return chunks


def lanes(count: int, batch: int, min_lane: int = MIN_LANE) -> list[range]:
    """``count`` chunks in contiguous lanes: at most ``batch`` of them, each of at least
    ``min_lane`` chunks where there are enough, as few lanes as the same number of batches
    allows (each lane boundary loses the context of the text before it)."""
    if count <= 0:
        return []
    wanted = max(1, min(batch, count // max(1, min_lane)))
    length = math.ceil(count / wanted)
    return [range(k, min(k + length, count)) for k in range(0, count, length)]


@dataclass
class Lane:
    """A contiguous stretch of the recording (samples ``begin`` to ``end``, its speech ``spans``)
    decoded one chunk after another, each prompted with the text before it; ``begin`` moves on
    as chunks are decoded."""

    spans: list[tuple[int, int]]
    begin: int
    end: int

    def next_chunk(self) -> Chunk | None:
        """The chunk to decode next (planned from ``begin``), None when the lane is done."""
        planned = plan_chunks(self.spans, self.end, begin=self.begin)
        return planned[0] if planned else None

    def advance(self, chunk: Chunk, stop: float | None) -> None:
        """``chunk`` decoded: to its end, or, when its decode stopped short ``stop`` seconds into
        it with speech after that, to there (the rest starts the next chunk, as the library's
        next window starts at a window's last timestamp)."""
        self.begin = chunk.end
        if stop is not None and stop >= MIN_PROGRESS_SECONDS:
            at = chunk.start + round(stop * SAMPLE_RATE)
            if any(s < chunk.end and e > at + REST_MIN_SAMPLES for s, e in self.spans):
                self.begin = at

    def speech_seconds(self, chunk: Chunk) -> float:
        """Seconds of the VAD's speech within ``chunk``."""
        inside = (min(e, chunk.end) - max(s, chunk.start) for s, e in self.spans)
        return sum(max(0, n) for n in inside) / SAMPLE_RATE


def sparse(words: int, speech_seconds: float) -> bool:
    """Whether a decode says far too little for the speech it heard: the decoder led astray by
    its prompt (the lane's text ended "Thank you." and 19 s of speech came out as "Thank you so
    much."), decoded again without it."""
    return (
        speech_seconds >= MIN_SPARSE_SPEECH_SECONDS
        and words < speech_seconds * MIN_WORDS_PER_SECOND
    )


def plan_lanes(spans: Sequence[tuple[int, int]], total: int, batch: int) -> list[Lane]:
    """The recording's speech in lanes of whole planned chunks (``lanes``)."""
    chunks = plan_chunks(spans, total)
    out = []
    for run in lanes(len(chunks), batch):
        begin, end = chunks[run[0]].start, chunks[run[-1]].end
        out.append(Lane([(s, e) for s, e in spans if begin <= s and e <= end], begin, end))
    return out


def window_frames(seconds: Sequence[float]) -> int:
    """The encoder input length (log-Mel frames, even) for a batch of chunks this long."""
    longest = max(max(seconds, default=0.0) + ENCODE_MARGIN_SECONDS, ENCODE_FLOOR_SECONDS)
    return min(FULL_FRAMES, math.ceil(longest * 100 / 2) * 2)


@dataclass(frozen=True)
class Piece:
    """A segment of one chunk's decode: seconds from the chunk's start, and its tokens."""

    start: float
    end: float
    tokens: tuple[int, ...]


def split_tokens(
    tokens: Sequence[int], timestamp_begin: int, seconds: float
) -> tuple[list[Piece], float | None]:
    """A decode's tokens cut at its timestamp pairs into segments, as the library cuts a window
    (``<|t0|> text <|t1|><|t1|> text <|t2|>``), times within the chunk's ``seconds``; and where
    the decode stopped short (None when it did not): a decode that ends on a pair, not on a
    closed segment, has left the rest of the chunk undecoded (its last words run past what it
    believes is the window's end, or it gave up on them), and the library decodes again from
    that pair's time. Text after the pair is dropped with it, as the library drops it."""

    def time(token: int) -> float:
        return min(seconds, (token - timestamp_begin) * TIME_PRECISION)

    def stamp(k: int) -> bool:
        return tokens[k] >= timestamp_begin

    tokens = list(tokens)
    if not tokens:
        return [], None
    cuts = [k for k in range(1, len(tokens)) if stamp(k) and stamp(k - 1)]
    if not cuts:  # one segment, to its closing timestamp or the chunk's end
        stamps = [t for t in tokens if t >= timestamp_begin]
        end = time(stamps[-1]) if stamps and stamps[-1] != timestamp_begin else seconds
        start = time(tokens[0]) if stamp(0) else 0.0
        return [Piece(start, max(start, end), tuple(tokens))], None
    closed = len(tokens) >= 2 and stamp(len(tokens) - 1) and not stamp(len(tokens) - 2)
    if closed:
        cuts.append(len(tokens))
    pieces: list[Piece] = []
    last = 0
    for cut in cuts:
        part = tokens[last:cut]
        pieces.append(Piece(time(part[0]), time(part[-1]), tuple(part)))
        last = cut
    return pieces, None if closed else time(tokens[last - 1])


def compression_ratio(text: str) -> float:
    """How well the text compresses (zlib, as the library measures): a loop compresses well."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def silent(no_speech_prob: float, avg_logprob: float) -> bool:
    """The library's no-speech rule: a window it skips."""
    return no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob <= LOG_PROB_THRESHOLD


def loops(tokens: Sequence[int], n: int = 4, times: int = 3) -> bool:
    """Whether some ``n`` tokens recur ``times`` times or more: the decoder looping on itself
    (the sign of a loop here and in ``encoder_window``'s guard). Speech said twice is not one."""
    grams = Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return bool(grams) and max(grams.values()) >= times


def fails(
    compression: float, avg_logprob: float, no_speech_prob: float, looping: bool = True
) -> bool:
    """The library's rule for a decode redone at the next temperature: too repetitive, or too
    improbable; never what looks like silence (improbable and likely no speech). Too
    repetitive counts only for a decode that ``loops``: a chunk holding a sentence said twice
    (measured: the bench's recording opens with one recording of a speech three times)
    compresses past the threshold however it is decoded, and the five sampled decodes the
    library then pays for only drop words."""
    if avg_logprob < LOG_PROB_THRESHOLD and no_speech_prob > NO_SPEECH_THRESHOLD:
        return False
    repetitive = compression > COMPRESSION_RATIO_THRESHOLD and looping
    return repetitive or avg_logprob < LOG_PROB_THRESHOLD


def prompt(
    sot_prev: int, sot_sequence: Sequence[int], previous: Sequence[int], hotwords: Sequence[int]
) -> list[int]:
    """A decode's prompt as the library builds it: hotwords and the previous text (each cut to
    the budget) after ``<|startofprev|>``, then the start-of-transcript sequence."""
    head: list[int] = []
    if previous or hotwords:
        head = [sot_prev, *hotwords[:PROMPT_TOKENS], *previous[-PROMPT_TOKENS:]]
    return [*head, *sot_sequence]
