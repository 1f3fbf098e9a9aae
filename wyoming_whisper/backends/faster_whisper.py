"""faster-whisper (CTranslate2) backend, on CPU or CUDA."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .. import malloc
from .base import (
    SAMPLE_RATE,
    CancelToken,
    OnSegment,
    Result,
    Score,
    Scorer,
    Segment,
    TranscribeOptions,
    Word,
    decoding_language,
    names_prompt,
)
from .faster_whisper_internals import (
    ctranslate2_model,
    library_encode,
    load_silero,
    log_mel,
    long_form_problems,
    pad_to_window,
    text_tokenizer,
    whisper_tokenizer,
)
from .long_form import LONG_FORM_SECONDS, batch_size
from .long_form_decode import LongForm

_LOGGER = logging.getLogger(__name__)
# Threads that run a share of a score's forced passes on another model replica.
_SCORING = ThreadPoolExecutor(max_workers=4, thread_name_prefix="score")
FULL_FRAMES = 3000  # Whisper's 30 s window of log-Mel frames
SCORE_MARGIN_FRAMES = 200  # scored audio is encoded with 2 s of window past its end


def release_freed_memory() -> None:
    """Hand freed heap pages back to the OS so an unload shows up in RSS (glibc keeps them)."""
    gc.collect()
    malloc.trim()


def _segment(seg: Any, index: int) -> Segment:
    """faster-whisper's segment -> ours (plain floats, rounded times)."""
    words = tuple(
        Word(w.word, round(w.start, 3), round(w.end, 3), round(w.probability, 4))
        for w in (seg.words or ())
    )
    return Segment(
        id=index,
        seek=int(seg.seek),
        start=round(float(seg.start), 3),
        end=round(float(seg.end), 3),
        text=seg.text,
        tokens=tuple(int(t) for t in seg.tokens),
        temperature=float(seg.temperature or 0.0),
        avg_logprob=float(seg.avg_logprob),
        compression_ratio=float(seg.compression_ratio),
        no_speech_prob=float(seg.no_speech_prob),
        words=words,
    )


class FasterWhisperModel:
    """One CTranslate2 Whisper model in memory."""

    def __init__(self, model: Any, long_form: LongForm | None = None) -> None:
        self._model = model
        self._fitted = hasattr(model, "decoding")  # FittedWhisperModel (encoder_window.py)
        self._long_form = long_form  # None: long audio too is decoded the library's way

    def _batched(self, audio: np.ndarray, options: TranscribeOptions) -> bool:
        """Whether this decode takes the batched long-form path (long_form.py): audio past
        ``LONG_FORM_SECONDS``, unless word timestamps are asked for (the library aligns them)."""
        return (
            self._long_form is not None
            and len(audio) > LONG_FORM_SECONDS * SAMPLE_RATE
            and not options.word_timestamps
        )

    @property
    def is_multilingual(self) -> bool:
        return bool(ctranslate2_model(self._model).is_multilingual)

    def _hotwords(self, phrases: tuple[str, ...]) -> str | None:
        """The names that fit the prompt's token budget, counted with the model's tokenizer."""
        if not any(p.strip() for p in phrases):
            return None
        tokenizer = text_tokenizer(self._model)
        return names_prompt(
            phrases, lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)
        )

    def transcribe(
        self,
        audio: np.ndarray,
        options: TranscribeOptions,
        on_segment: OnSegment | None = None,
        cancel: CancelToken | None = None,
    ) -> Result:
        if cancel is not None and cancel.cancelled:  # cancelled while waiting for a worker
            return Result(text="", language=options.language or "", duration=0.0)
        language = decoding_language(options.language, self.is_multilingual)
        if self._batched(audio, options):
            assert self._long_form is not None
            hotwords = self._hotwords(options.hotwords)
            batched = self._long_form.transcribe(
                audio, options, language, hotwords, on_segment, cancel
            )
            if batched is not None:
                return batched
        fitted = self._fitted
        with self._model.decoding(cancel) if fitted else contextlib.nullcontext() as decode:
            segments_iter, info = self._model.transcribe(
                audio,
                language=language,
                task=options.task,
                beam_size=options.beam_size,
                temperature=list(options.temperature),
                initial_prompt=options.initial_prompt or None,
                hotwords=self._hotwords(options.hotwords),
                word_timestamps=options.word_timestamps,
                vad_filter=options.vad_filter,
                condition_on_previous_text=options.condition_on_previous_text,
            )
            segments: list[Segment] = []
            for seg in segments_iter:  # the windows are decoded as this iterates
                segment = _segment(seg, len(segments))
                segments.append(segment)
                if on_segment is not None:
                    on_segment(segment)
                if cancel is not None and cancel.cancelled:
                    break
        return Result(
            text="".join(s.text for s in segments).strip(),
            language=info.language,
            duration=float(info.duration),
            segments=tuple(segments),
            language_probability=float(info.language_probability),
            task=options.task,
            encoder_fallbacks=decode.fallbacks if decode is not None else 0,
        )

    def scorer(self, audio: np.ndarray, language: str | None) -> Scorer:
        """The audio encoded once; each text then scored by Whisper's decoder forced through
        its tokens (CTranslate2's ``align``: the probability of every token given the audio)."""
        model = self._model
        features = log_mel(model, audio)
        # The audio and 2 s: a forced pass cannot loop, so no 10 s floor (bench: the same
        # choices as the fitted window, a third less time).
        frames = min(FULL_FRAMES, (features.shape[-1] + SCORE_MARGIN_FRAMES) // 2 * 2)
        features = np.ascontiguousarray(pad_to_window(features)[:, :frames])
        encoded = library_encode(model, features)  # (not the fitted class's: no guard)
        tokenizer = whisper_tokenizer(
            model,
            self.is_multilingual,
            language=decoding_language(language, self.is_multilingual) or "en",
        )
        ct2 = ctranslate2_model(model)

        def forced(tokens: list[int]) -> Score:
            found = ct2.align(encoded, tokenizer.sot_sequence, [tokens], frames // 2)
            probs = np.asarray(found[0].text_token_probs, dtype=np.float64)
            return Score(float(np.log(np.maximum(probs, 1e-12)).sum()), len(tokens))

        def score(texts: list[str]) -> list[Score]:
            if not texts:
                return []
            tokens = [tokenizer.encode(" " + text.strip()) for text in texts]
            # One share of the texts per model replica, at once: an idle replica halves the
            # wait (a busy one queues its share, as long as one after the other would take).
            shares = min(int(ct2.num_workers), len(texts))

            def share(k: int) -> list[Score]:
                return [forced(t) for t in tokens[k::shares]]

            helpers = [_SCORING.submit(share, k) for k in range(1, shares)]
            scored = [share(0), *(h.result() for h in helpers)]
            return [scored[i % shares][i // shares] for i in range(len(texts))]

        return score

    def unload(self) -> None:
        model, self._model = self._model, None
        # Older CTranslate2 lacks unload_model: dropping the object frees the memory too.
        with contextlib.suppress(Exception):
            ctranslate2_model(model).unload_model()
        del model
        release_freed_memory()


class FasterWhisperBackend:
    name = "faster-whisper"

    def __init__(
        self,
        device: str,
        device_index: int,
        compute_type: str,
        num_workers: int = 1,
        encoder_window: str = "auto",
        cpu_threads: int = 0,
    ) -> None:
        self.device = device
        self.device_index = device_index
        self.compute_type = compute_type
        self.num_workers = num_workers
        self.cpu_threads = cpu_threads  # per worker; 0: CTranslate2's default (4, or the cores)
        from .encoder_window import FULL_WINDOW, fitted_model_class

        # None: this faster-whisper broke the contract (the library's own class, 30 s windows).
        # With ``full`` the class keeps every window at 30 s and only reuses the language
        # detection's encoding of the opening window.
        self._model_class = fitted_model_class()
        self._fit = FULL_WINDOW if encoder_window != "auto" else None
        self.encoder_window = (
            "auto" if self._model_class is not None and self._fit is None else "full"
        )
        problems = long_form_problems()
        if problems:
            _LOGGER.warning("Long audio is decoded sequentially: %s", "; ".join(problems))
        self.long_form = not problems  # long audio decoded in batches (long_form.py)

    @property
    def replicas(self) -> int:
        """CTranslate2 replicas of a model: one per worker, and on the CPU one per idle core's
        worth of threads beside them, up to two per worker (the weights are shared: base costs
        86 MB with one replica or two), which a long recording's batch (long_form_decode.py) and
        a command's forced passes (``scorer``) spread over."""
        if self.device != "cpu" or not self.cpu_threads:
            return self.num_workers
        spare = (os.cpu_count() or 1) // self.cpu_threads
        return max(self.num_workers, min(2 * self.num_workers, spare))

    def resolve(self, name: str, cache_dir: Path | None = None) -> str:
        """A CTranslate2 model directory (see ctranslate2_models.py)."""
        from .ctranslate2_models import resolve

        return resolve(name, cache_dir)

    def load(self, model_path: str) -> FasterWhisperModel:
        from faster_whisper import WhisperModel

        # The Silero VAD is shared by all models and cached for the process: load it with the
        # first model so no request pays for it (and unloading a model leaves it in place).
        load_silero()

        fit = {"fit": self._fit} if self._model_class is not None and self._fit else {}
        model = (self._model_class or WhisperModel)(
            model_path,
            device=self.device,
            device_index=self.device_index,
            compute_type=self.compute_type,
            num_workers=self.replicas,
            cpu_threads=self.cpu_threads,
            local_files_only=True,
            **fit,
        )
        # Converting the stored weights to the compute type leaves ~15 MB of freed heap behind
        # (tiny.en, int8): hand it back now rather than at the first idle moment.
        release_freed_memory()
        long_form = LongForm(model, batch_size(self.device)) if self.long_form else None
        return FasterWhisperModel(model, long_form)
