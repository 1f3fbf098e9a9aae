"""Fake ``mlx_whisper.transcribe`` module (see the package docstring)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tqdm

CALLS: list[dict[str, Any]] = []
LOADS: list[tuple[str, str]] = []
LAST: FakeWhisper | None = None  # the model load_model gave last (the fake tokenizer's vocabulary)
# mlx_whisper.decoding.DecodingOptions' fields: anything else is a TypeError there too.
DECODING_OPTIONS = {
    "task", "language", "temperature", "sample_len", "best_of", "beam_size", "patience",
    "length_penalty", "prompt", "prefix", "suppress_tokens", "suppress_blank",
    "without_timestamps", "max_initial_timestamp", "fp16",
}  # fmt: skip


@dataclasses.dataclass
class FakeWhisper:
    """Stands for mlx_whisper.whisper.Whisper: the attributes the backend reads, plus the CPU
    model that does the work."""

    cpu_model: Any
    n_vocab: int
    dtype: str

    @property
    def is_multilingual(self) -> bool:
        return self.n_vocab >= 51865

    @property
    def num_languages(self) -> int:
        return self.n_vocab - 51765 - int(self.is_multilingual)


def load_model(path_or_hf_repo: str, dtype: str = "float32") -> FakeWhisper:
    """The fake's weights are a CTranslate2 model directory."""
    from faster_whisper import WhisperModel

    LOADS.append((path_or_hf_repo, dtype))
    model = WhisperModel(path_or_hf_repo, device="cpu", compute_type="int8")
    n_vocab = 51865 if model.model.is_multilingual else 51864
    global LAST
    LAST = FakeWhisper(model, n_vocab, dtype)
    return LAST


class ModelHolder:
    model: Any = None
    model_path: str | None = None

    @classmethod
    def get_model(cls, model_path: str, dtype: str) -> Any:
        if cls.model is None or model_path != cls.model_path:
            cls.model = load_model(model_path, dtype=dtype)
            cls.model_path = model_path
        return cls.model


def transcribe(
    audio: str | np.ndarray,
    *,
    path_or_hf_repo: str = "mlx-community/whisper-tiny",
    verbose: bool | None = None,
    temperature: float | tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    compression_ratio_threshold: float | None = 2.4,
    logprob_threshold: float | None = -1.0,
    no_speech_threshold: float | None = 0.6,
    condition_on_previous_text: bool = True,
    initial_prompt: str | None = None,
    word_timestamps: bool = False,
    prepend_punctuations: str = "\"'“¿([{-",
    append_punctuations: str = "\"'.。,，!！?？:：”)]}、",  # noqa: RUF001
    clip_timestamps: str | list[float] = "0",
    hallucination_silence_threshold: float | None = None,
    **decode_options: Any,
) -> dict[str, Any]:
    unknown = set(decode_options) - DECODING_OPTIONS
    if unknown:
        raise TypeError(f"DecodingOptions got unexpected keyword arguments {sorted(unknown)}")
    if decode_options.get("beam_size") is not None:
        raise NotImplementedError("Beam search decoder is not yet implemented")
    assert isinstance(audio, np.ndarray) and audio.dtype == np.float32
    CALLS.append({"path_or_hf_repo": path_or_hf_repo, "temperature": temperature,
                  "initial_prompt": initial_prompt, "word_timestamps": word_timestamps,
                  "condition_on_previous_text": condition_on_previous_text,
                  "clip_timestamps": clip_timestamps, "verbose": verbose,
                  **decode_options})  # fmt: skip
    dtype = "float16" if decode_options.get("fp16", True) else "float32"
    model = ModelHolder.get_model(path_or_hf_repo, dtype)
    language = decode_options.get("language")
    if language is None and not model.is_multilingual:
        language = "en"
    temperatures = [temperature] if isinstance(temperature, (int, float)) else list(temperature)
    segments_iter, info = model.cpu_model.transcribe(
        audio,
        language=language,
        task=decode_options.get("task", "transcribe"),
        beam_size=1,
        temperature=temperatures,
        initial_prompt=initial_prompt,
        word_timestamps=word_timestamps,
        condition_on_previous_text=condition_on_previous_text,
        clip_timestamps=clip_timestamps,
        compression_ratio_threshold=compression_ratio_threshold,
        log_prob_threshold=logprob_threshold,
        no_speech_threshold=no_speech_threshold,
    )
    all_segments: list[dict[str, Any]] = []
    window: list[dict[str, Any]] = []
    seek = None
    with tqdm.tqdm(total=len(audio), disable=verbose is not False) as pbar:
        for seg in segments_iter:
            if seek is not None and seg.seek != seek:  # a window is done: as in mlx-whisper
                all_segments.extend(window)
                window = []
                pbar.update(1)
            seek = seg.seek
            window.append({
                "id": len(all_segments) + len(window), "seek": seg.seek, "start": seg.start,
                "end": seg.end, "text": seg.text, "tokens": list(seg.tokens),
                "temperature": seg.temperature, "avg_logprob": seg.avg_logprob,
                "compression_ratio": seg.compression_ratio, "no_speech_prob": seg.no_speech_prob,
                **({"words": [{"word": w.word, "start": w.start, "end": w.end,
                               "probability": w.probability} for w in seg.words or ()]}
                   if word_timestamps else {}),
            })  # fmt: skip
        all_segments.extend(window)
        pbar.update(1)
    return {
        "text": "".join(s["text"] for s in all_segments),
        "segments": all_segments,
        "language": info.language,
    }
