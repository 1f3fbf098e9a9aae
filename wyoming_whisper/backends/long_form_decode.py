"""Long audio decoded in batches by a faster-whisper model's CTranslate2 Whisper (the model's side
of ``long_form``: chunks, lanes and the library's rules are planned there).

On the CPU, where the model has a replica per lane, each lane decodes its chunks one after
another on a replica of its own (``_Run.apart``); elsewhere each batch (the next chunk of every
lane) is encoded at once (``Whisper.encode``) and decoded at once (``Whisper.generate``). Either
way a chunk is prompted with its lane's text so far and decoded at the request's first
temperature with its beam size; a chunk whose decode fails the library's thresholds is decoded
again alone at the next temperatures. Segments are handed to ``on_segment`` in time order as soon
as every chunk before theirs is decoded; the cancel token is read before each chunk or batch.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import SAMPLE_RATE, CancelToken, OnSegment, Result, Segment, TranscribeOptions
from .faster_whisper_internals import (
    ctranslate2_model,
    library_encode,
    log_mel,
    pad_to_window,
    speech_spans,
    suppressed_tokens,
    whisper_tokenizer,
)
from .long_form import (
    BEST_OF,
    COMPRESSION_RATIO_THRESHOLD,
    MAX_INITIAL_TIMESTAMP_INDEX,
    MAX_LENGTH,
    PROMPT_RESET_ON_TEMPERATURE,
    VAD_OPTIONS,
    Chunk,
    Lane,
    Piece,
    compression_ratio,
    fails,
    joined_spans,
    loops,
    plan_chunks,
    plan_lanes,
    prompt,
    silent,
    sparse,
    split_tokens,
    vad_parts,
    window_frames,
)

HOP = 160  # samples per log-Mel frame (a segment's ``seek`` counts frames, as the library's)
# Threads that decode the lanes after the first on the model's other replicas (CPU, ``apart``):
# CTranslate2 shares the weights between replicas, so a second core costs no memory. One also
# runs the VAD over the second half of a long recording (``_spans``).
_REPLICAS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="long-form")


@dataclass(frozen=True)
class Decode:
    """One chunk's decode and the library's measures of it."""

    tokens: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float


class LongForm:
    """Batched long-form decoding with one loaded faster-whisper ``WhisperModel``."""

    def __init__(self, model: Any, batch: int) -> None:
        self.model = model
        self.ct2 = ctranslate2_model(model)
        self.batch = batch

    def spread(self, lanes: int) -> bool:
        """Whether ``lanes`` are decoded apart, each on a replica of its own, rather than in
        batches (on the CPU, where the model has a replica for each: see
        FasterWhisperBackend.replicas; one batch of two on one thread costs 1.7x as long as
        two chunks on two replicas: tiny.en 4.24 s against 2.56 s)."""
        return 1 < lanes <= int(self.ct2.num_workers) and self.ct2.device == "cpu"

    def transcribe(
        self,
        audio: np.ndarray,
        options: TranscribeOptions,
        language: str | None,
        hotwords: str | None,
        on_segment: OnSegment | None = None,
        cancel: CancelToken | None = None,
    ) -> Result | None:
        """The recording decoded in batches; None when the VAD hears no speech in it (the
        caller decodes it the library's way, which decides what silence says)."""
        spans = _spans(audio)
        if not plan_chunks(spans, len(audio)):
            return None
        run = _Run(self, audio, plan_lanes(spans, len(audio), self.batch), options, language)
        run.hotwords, run.on_segment = hotwords, on_segment
        if self.spread(len(run.lanes)):
            run.apart(cancel)
        else:
            while not (cancel is not None and cancel.cancelled) and run.step():
                pass
        return run.result()


def _spans(audio: np.ndarray) -> list[tuple[int, int]]:
    """Silero's speech spans in ``audio``; in a long recording, its two halves' at once."""

    def heard(start: int, end: int) -> list[tuple[int, int]]:
        found = speech_spans(audio[start:end], **VAD_OPTIONS)
        return [(start + s["start"], start + s["end"]) for s in found]

    parts = vad_parts(len(audio))
    if parts is None or (os.cpu_count() or 1) < 2:
        return heard(0, len(audio))
    second = _REPLICAS.submit(heard, parts.second_start, len(audio))
    first = heard(0, parts.first_end)
    joined = joined_spans(first, second.result(), parts.low, parts.high)
    return joined if joined is not None else heard(0, len(audio))


class _Run:
    """One recording's decode: its chunks, each lane's text so far, the segments given out."""

    def __init__(
        self,
        owner: LongForm,
        audio: np.ndarray,
        lanes: list[Lane],
        options: TranscribeOptions,
        language: str | None,
    ) -> None:
        self.owner, self.audio, self.lanes, self.options = owner, audio, lanes, options
        self.language, self.language_probability = language, 1.0
        self.hotwords: str | None = None
        self.on_segment: OnSegment | None = None
        # per lane: its text's tokens (as the library keeps them), and where its prompt starts
        self.history: list[list[int]] = [[] for _ in lanes]
        self.reset_since = [0] * len(lanes)
        self.decoded: list[list[tuple[Chunk, Piece, str, Decode]]] = [[] for _ in lanes]
        self.segments: list[Segment] = []
        self._open = 0  # the first lane whose segments are not all given out
        self.tokenizer: Any = None
        self.hotword_tokens: list[int] = []
        self.suppress: list[int] = []
        self._lock = threading.Lock()  # lanes decoded apart: their text kept and given out
        self._started = threading.Event()  # ... once lane 0 has built the tokenizer

    def apart(self, cancel: CancelToken | None) -> None:
        """Each lane decoded on a replica of its own, chunk after chunk, none waiting for
        another (a batch waits for its slowest chunk), its segments given out in time order as
        they are final."""
        if self.language is not None or not self.owner.ct2.is_multilingual:
            self._start(None)
        helpers = [_REPLICAS.submit(self._lane, n, cancel) for n in range(1, len(self.lanes))]
        try:
            self._lane(0, cancel)
        finally:
            self._started.set()  # a lane still waiting for lane 0's language gives up
            for helper in helpers:
                helper.result()

    def _lane(self, n: int, cancel: CancelToken | None) -> None:
        """Lane ``n``'s chunks in order, each prompted with the lane's text so far; lane 0's
        first chunk tells the language when it is not given, the other lanes wait for it."""
        first = self.options.temperature[0]
        while not (cancel is not None and cancel.cancelled):
            chunk = self.lanes[n].next_chunk()
            if chunk is None:
                return
            encoded = library_encode(self.owner.model, self._features([chunk]))
            if n == 0 and self.tokenizer is None:
                self._start(encoded)
                self._started.set()
            elif self.tokenizer is None:
                self._started.wait()
                if self.tokenizer is None:  # lane 0 failed (it raises to the caller)
                    return
            tok: Any = self.tokenizer
            previous = self._previous(n)
            chunk_prompt = prompt(tok.sot_prev, tok.sot_sequence, previous, self.hotword_tokens)
            result = self._generate(encoded, [chunk_prompt], first)[0]
            decode = self._checked(n, chunk, result, _held(encoded), chunk_prompt, bool(previous))
            with self._lock:
                self._keep(n, chunk, decode)
                self._emit()

    def _start(self, encoded: Any) -> None:
        """The language (detected on the first chunk if not given), tokenizer and prompts."""
        model, ct2 = self.owner.model, self.owner.ct2
        multilingual = bool(ct2.is_multilingual)
        if self.language is None:
            if multilingual:
                token, probability = ct2.detect_language(encoded)[0][0]
                self.language, self.language_probability = token[2:-2], float(probability)
            else:
                self.language = "en"
        self.tokenizer = tok = whisper_tokenizer(
            model, multilingual, self.language, task=self.options.task
        )
        self.suppress = list(suppressed_tokens(tok))
        if self.hotwords:
            self.hotword_tokens = list(tok.encode(" " + self.hotwords.strip()))
        initial = self.options.initial_prompt
        first = list(tok.encode(" " + initial.strip())) if initial and initial.strip() else []
        for history in self.history:
            history.extend(first)

    def _generate(self, encoded: Any, prompts: list[list[int]], temperature: float) -> list[Any]:
        if temperature > 0:
            sampling: dict[str, Any] = {
                "beam_size": 1,
                "num_hypotheses": BEST_OF,
                "sampling_topk": 0,
                "sampling_temperature": temperature,
            }
        else:
            sampling = {"beam_size": self.options.beam_size, "patience": 1.0}
        return list(
            self.owner.ct2.generate(
                encoded,
                prompts,
                length_penalty=1.0,
                max_length=MAX_LENGTH,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=self.suppress,
                max_initial_timestamp_index=MAX_INITIAL_TIMESTAMP_INDEX,
                **sampling,
            )
        )

    def _read(self, result: Any, temperature: float) -> Decode:
        tokens = tuple(int(t) for t in result.sequences_ids[0])
        avg_logprob = float(result.scores[0]) * len(tokens) / (len(tokens) + 1)
        text = self.tokenizer.decode(list(tokens)).strip()
        return Decode(
            tokens, avg_logprob, float(result.no_speech_prob), compression_ratio(text), temperature
        )

    def _fails(self, decode: Decode) -> bool:
        text = [t for t in decode.tokens if t < self.tokenizer.eot]
        # a repetitive decode is redone only when it loops (``fails``)
        return fails(
            decode.compression_ratio, decode.avg_logprob, decode.no_speech_prob, loops(text)
        )

    def _fallback(self, encoded: Any, chunk_prompt: list[int], first: Decode) -> Decode:
        """The library's temperature fallback for one chunk (``encoded``: its own), alone."""
        tried = [first]
        temperatures = self.options.temperature[1:]
        for temperature in temperatures:
            result = self._generate(encoded, [chunk_prompt], temperature)[0]
            decode = self._read(result, temperature)
            if not self._fails(decode):
                return decode
            tried.append(decode)
        kept = [d for d in tried if d.compression_ratio <= COMPRESSION_RATIO_THRESHOLD] or tried
        best = max(kept, key=lambda d: d.avg_logprob)
        return dataclasses.replace(best, temperature=temperatures[-1])

    def _previous(self, lane: int) -> list[int]:
        return self.history[lane][self.reset_since[lane] :]

    def step(self) -> bool:
        """Decode the next chunk of every lane, then give out what is final; False when every
        lane is done. CTranslate2 decodes a batch whose prompts are all as long: the previous
        texts are cut to the shortest, and chunks with none (a lane's first, or after a reset)
        decode apart."""
        planned = {n: lane.next_chunk() for n, lane in enumerate(self.lanes)}
        chunks = {n: chunk for n, chunk in planned.items() if chunk is not None}
        batch = list(chunks)
        previous = {n: self._previous(n) for n in batch}
        for group in ([n for n in batch if not previous[n]], [n for n in batch if previous[n]]):
            if group:
                shortest = min(len(previous[n]) for n in group)
                cut = [previous[n][len(previous[n]) - shortest :] for n in group]
                self._decode(group, [chunks[n] for n in group], cut)
        self._emit()
        return bool(batch)

    def _features(self, chunks: list[Chunk]) -> np.ndarray:
        """The chunks' log-Mel features, as long as the longest needs (``window_frames``)."""
        model, audio = self.owner.model, self.audio
        frames = window_frames([c.seconds for c in chunks])
        return np.stack(
            [pad_to_window(log_mel(model, audio[c.start : c.end]))[:, :frames] for c in chunks]
        ).astype(np.float32)

    def _decode(self, group: list[int], chunks: list[Chunk], previous: list[list[int]]) -> None:
        """One batch: the next chunk of each lane in ``group``, encoded and decoded at once."""
        model = self.owner.model
        features = self._features(chunks)
        encoded = library_encode(model, features)
        if self.tokenizer is None:
            self._start(encoded)
            previous = [self._previous(n) for n in group]  # the initial prompt, if any
        tok = self.tokenizer
        prompts = [prompt(tok.sot_prev, tok.sot_sequence, p, self.hotword_tokens) for p in previous]
        results = self._generate(encoded, prompts, self.options.temperature[0])
        for k, result in enumerate(results):
            lane, chunk = group[k], chunks[k]
            alone = functools.partial(library_encode, model, features[k][None])
            decode = self._checked(lane, chunk, result, alone, prompts[k], bool(previous[k]))
            self._keep(lane, chunk, decode)

    def _checked(
        self,
        lane: int,
        chunk: Chunk,
        result: Any,
        alone: Callable[[], Any],
        chunk_prompt: list[int],
        prompted: bool,
    ) -> Decode:
        """A chunk's decode as the library's rules leave it: decoded again without its lane's
        text where that text led it astray (``sparse``), and at the next temperatures where it
        fails (``alone``: the chunk's encoder output by itself; a batch's chunk is encoded again
        only then)."""
        tok, first = self.tokenizer, self.options.temperature[0]
        decode = self._read(result, first)
        if prompted and sparse(
            len(tok.decode(list(decode.tokens)).split()), self.lanes[lane].speech_seconds(chunk)
        ):
            chunk_prompt = prompt(tok.sot_prev, tok.sot_sequence, [], self.hotword_tokens)
            decode = self._read(self._generate(alone(), [chunk_prompt], first)[0], first)
            self.reset_since[lane] = len(self.history[lane])
        if len(self.options.temperature) > 1 and self._fails(decode):
            decode = self._fallback(alone(), chunk_prompt, decode)
        return decode

    def _keep(self, lane: int, chunk: Chunk, decode: Decode) -> None:
        """A chunk's segments (none when the library would call it silence), its text added to
        its lane's prompt, and its rest queued when the decode stopped short of its speech."""
        if silent(decode.no_speech_prob, decode.avg_logprob):
            self.lanes[lane].advance(chunk, None)
            return
        tok = self.tokenizer
        pieces, short = split_tokens(decode.tokens, tok.timestamp_begin, chunk.seconds)
        for piece in pieces:
            text = tok.decode(list(piece.tokens))
            if piece.start == piece.end or not text.strip():
                continue
            self.history[lane].extend(piece.tokens)
            self.decoded[lane].append((chunk, piece, text, decode))
        if (
            not self.options.condition_on_previous_text
            or decode.temperature > PROMPT_RESET_ON_TEMPERATURE
        ):
            self.reset_since[lane] = len(self.history[lane])
        self.lanes[lane].advance(chunk, short)

    def _emit(self) -> None:
        """Segments given out in time order: a lane's as they are decoded once every lane
        before it is done."""
        while self._open < len(self.lanes):
            lane = self._open
            for chunk, piece, text, decode in self.decoded[lane]:
                floor = self.segments[-1].end if self.segments else 0.0
                segment = _segment(len(self.segments), floor, chunk, piece, text, decode)
                self.segments.append(segment)
                if self.on_segment is not None:
                    self.on_segment(segment)
            self.decoded[lane].clear()
            if self.lanes[lane].next_chunk() is not None:
                return
            self._open += 1

    def result(self) -> Result:
        return Result(
            text="".join(s.text for s in self.segments).strip(),
            language=self.language or "",
            duration=len(self.audio) / SAMPLE_RATE,
            segments=tuple(self.segments),
            language_probability=self.language_probability,
            task=self.options.task,
        )


def _segment(
    index: int, floor: float, chunk: Chunk, piece: Piece, text: str, decode: Decode
) -> Segment:
    """A chunk's piece as a segment in the recording's time, starting no earlier than ``floor``
    (the segment before it ends there)."""
    start = max(floor, round(chunk.offset + piece.start, 3))
    end = max(start, round(chunk.offset + piece.end, 3))
    return Segment(
        id=index,
        seek=chunk.start // HOP,
        start=start,
        end=end,
        text=text,
        tokens=piece.tokens,
        temperature=decode.temperature,
        avg_logprob=decode.avg_logprob,
        compression_ratio=decode.compression_ratio,
        no_speech_prob=decode.no_speech_prob,
    )


def _held(encoded: Any) -> Callable[[], Any]:
    """An encoder output at hand, as ``_Run._checked`` asks for a chunk's own."""
    return lambda: encoded
