"""mlx-whisper backend: Whisper on Apple silicon's GPU through Metal.

Written to mlx-whisper's public API: ``mlx_whisper.load_models.load_model`` loads a model once (in
the loader thread, so no request pays for it) and ``mlx_whisper.transcribe`` decodes. mlx-whisper
decodes with the one model held in its process-wide ``ModelHolder``, so decodes are serialised by a
lock and the holder is pointed at this model before each one; otherwise two served models would be
reloaded from disk in turns.

mlx-whisper has no segment callback. Its decode loop updates a tqdm bar once per 30-second window,
right after that window's segments are final; for the length of a decode the bar is replaced by a
stand-in that hands the new segments on and stops the decode when the client is gone. Should a
future mlx-whisper change that loop, segments arrive when the decode ends and cancellation takes
effect then: slower to stream, never wrong.
"""

from __future__ import annotations

import gc
import importlib
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, TypeVar

import numpy as np

from .base import (
    PROMPT_TOKEN_BUDGET,
    SAMPLE_RATE,
    CancelToken,
    OnSegment,
    Result,
    Segment,
    TranscribeOptions,
    Word,
    decoding_language,
    names_prompt,
)
from .ctranslate2_models import ModelResolutionError, local_model

_LOGGER = logging.getLogger(__name__)

# Short names -> the mlx-community conversions mlx-whisper's documentation points at. "large" means
# large-v3, as it does for faster-whisper.
MLX_REPOS: dict[str, str] = {
    "tiny": "mlx-community/whisper-tiny-mlx",
    "tiny.en": "mlx-community/whisper-tiny.en-mlx",
    "base": "mlx-community/whisper-base-mlx",
    "base.en": "mlx-community/whisper-base.en-mlx",
    "small": "mlx-community/whisper-small-mlx",
    "small.en": "mlx-community/whisper-small.en-mlx",
    "medium": "mlx-community/whisper-medium-mlx",
    "medium.en": "mlx-community/whisper-medium.en-mlx",
    "large-v1": "mlx-community/whisper-large-mlx",
    "large-v2": "mlx-community/whisper-large-v2-mlx",
    "large-v3": "mlx-community/whisper-large-v3-mlx",
    "large": "mlx-community/whisper-large-v3-mlx",
    "large-v3-turbo": "mlx-community/whisper-large-v3-turbo",
    "turbo": "mlx-community/whisper-large-v3-turbo",
    "distil-large-v3": "mlx-community/distil-whisper-large-v3",
}
WEIGHT_FILES = ("weights.safetensors", "weights.npz")
T = TypeVar("T")
# MLX's lazy arrays are bound to the stream of the thread that made them, and mlx-whisper keeps one
# model per process: every MLX call (load, decode, unload) runs on this one thread, in turn.
_MLX_THREAD = ThreadPoolExecutor(1, thread_name_prefix="mlx")


def on_mlx_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` on the MLX thread and wait for it (called from the loader or inference pool)."""
    return _MLX_THREAD.submit(fn, *args).result()


class _Cancelled(Exception):
    """Raised inside mlx-whisper's loop to stop a decode whose client is gone."""


def is_mlx_model_dir(path: Path) -> bool:
    return (
        path.is_dir()
        and (path / "config.json").is_file()
        and any((path / f).is_file() for f in WEIGHT_FILES)
    )


def resolve_mlx(name: str, cache_dir: Path | None = None, *, download: bool = True) -> str:
    """Return a local mlx model directory for ``name`` (a directory, a short name or a repo id).

    Repositories are fetched into ``cache_dir`` (else the Hugging Face cache) once; later starts
    find them there without the network.
    """
    local = local_model(
        name,
        is_mlx_model_dir,
        f"an mlx Whisper model directory (it needs config.json and {' or '.join(WEIGHT_FILES)})",
    )
    if local is not None:
        return local
    repo = MLX_REPOS.get(name, name if "/" in name else None)
    if repo is None:
        raise ModelResolutionError(
            f"model {name!r} is unknown to the mlx backend; use an mlx model directory, a hub id "
            f"(org/name) or one of: {', '.join(MLX_REPOS)}"
        )
    from huggingface_hub import snapshot_download

    fetch: Callable[..., str] = snapshot_download
    kwargs: dict[str, Any] = {
        "repo_id": repo,
        "cache_dir": str(cache_dir) if cache_dir else None,
        "allow_patterns": ["config.json", *WEIGHT_FILES],
    }
    try:
        cached = fetch(**kwargs, local_files_only=True)
        if is_mlx_model_dir(Path(cached)):
            return str(cached)
    except Exception:  # not in the cache: download below
        pass
    where = f"the Hugging Face cache ({cache_dir or 'default location'})"
    if not download:
        raise ModelResolutionError(f"model {name!r} ({repo}) not found in {where}")
    _LOGGER.info("Downloading model %s (%s) from the Hugging Face hub...", name, repo)
    try:
        path = Path(fetch(**kwargs))
    except Exception as err:
        raise ModelResolutionError(
            f"model {name!r} not found; looked in {where} and the Hugging Face hub "
            f"({repo}: {err.__class__.__name__}: {err})"
        ) from err
    if not is_mlx_model_dir(path):
        raise ModelResolutionError(f"model {name!r}: {repo} holds no mlx Whisper weights")
    return str(path)


_THREAD = threading.local()


def ensure_stream(mx: Any) -> None:
    """Give the calling thread its own MLX stream, once.

    MLX's streams belong to threads: evaluating from a thread that did not make the arrays fails
    with "There is no Stream(cpu, 0) in current thread" (seen with mlx 0.32 on Linux).
    """
    if not getattr(_THREAD, "stream", None):
        _THREAD.stream = mx.new_stream(mx.default_device())
        mx.set_default_stream(_THREAD.stream)


def clear_mlx_cache(mx: Any) -> None:
    """Give MLX's buffer cache back (Metal memory); the call moved from mx.metal to mx in 0.26."""
    clear = getattr(mx, "clear_cache", None)
    if clear is None:
        clear = mx.metal.clear_cache
    clear()


class _Progress:
    """Stands in for tqdm's bar inside mlx-whisper's decode loop (see the module docstring)."""

    def __init__(self, on_window: Callable[[list[dict[str, Any]]], None]) -> None:
        self._on_window = on_window

    def __call__(self, *args: Any, **kwargs: Any) -> _Progress:  # tqdm.tqdm(total=..., ...)
        return self

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float = 1) -> None:
        # Called from the decode loop's own frame, whose ``all_segments`` now holds this window.
        segments = sys._getframe(1).f_locals.get("all_segments")
        if isinstance(segments, list):
            self._on_window(segments)


class MlxModel:
    """One mlx Whisper model in (unified) memory."""

    def __init__(self, mlx_whisper: ModuleType, mx: Any, model: Any, path: str, fp16: bool) -> None:
        self._mlx_whisper = mlx_whisper
        self._mx = mx
        self._model = model
        self.path = path
        self.fp16 = fp16
        self._multilingual = bool(model.is_multilingual)
        self._text_tokenizer: Any = None

    @property
    def is_multilingual(self) -> bool:
        return self._multilingual

    def _names(self, phrases: tuple[str, ...], initial_prompt: str | None) -> str | None:
        """The names that fit the prompt's token budget beside the client's prompt: mlx-whisper
        has no hotwords, so they lead its one prompt, of which it keeps the last tokens."""
        if not any(p.strip() for p in phrases):
            return None
        tokenizer = self._tokenizer()

        def cost(text: str) -> int:
            return len(tokenizer.encode(text))

        budget = PROMPT_TOKEN_BUDGET - (cost(" " + initial_prompt) if initial_prompt else 0)
        return names_prompt(phrases, cost, budget)

    def _tokenizer(self) -> Any:
        if self._text_tokenizer is None:
            module = importlib.import_module("mlx_whisper.tokenizer")
            self._text_tokenizer = module.get_tokenizer(
                self._multilingual, num_languages=self._model.num_languages
            )
        return self._text_tokenizer

    def decode_kwargs(self, audio: np.ndarray, options: TranscribeOptions) -> dict[str, Any]:
        """TranscribeOptions -> mlx_whisper.transcribe's keywords."""
        prompt = self._names(options.hotwords, options.initial_prompt) or ""
        if options.initial_prompt:
            prompt = f"{prompt} {options.initial_prompt}" if prompt else options.initial_prompt
        temperature = tuple(options.temperature)
        kwargs: dict[str, Any] = {
            "path_or_hf_repo": self.path,
            "verbose": None,  # no printing; the progress stand-in is used all the same
            "temperature": temperature[0] if len(temperature) == 1 else temperature,
            "initial_prompt": prompt or None,
            "word_timestamps": options.word_timestamps,
            "condition_on_previous_text": options.condition_on_previous_text,
            # decode options; beam_size is left out: mlx-whisper decodes greedily only
            "language": decoding_language(options.language, self._multilingual),
            "task": options.task,
            "fp16": self.fp16,
        }
        if options.vad_filter:
            clips = speech_clips(audio)
            if clips is not None:
                kwargs["clip_timestamps"] = clips
        return kwargs

    def transcribe(
        self,
        audio: np.ndarray,
        options: TranscribeOptions,
        on_segment: OnSegment | None = None,
        cancel: CancelToken | None = None,
    ) -> Result:
        if self._model is None:
            raise RuntimeError("model is unloaded")
        audio = np.asarray(audio, dtype=np.float32)
        duration = float(audio.shape[0]) / SAMPLE_RATE
        kwargs = self.decode_kwargs(audio, options)
        segments: list[Segment] = []
        seen = 0

        def take(raw: list[dict[str, Any]]) -> None:
            nonlocal seen
            for item in raw[seen:]:
                seen += 1
                segment = convert_segment(item, len(segments))
                if segment is None:
                    continue
                segments.append(segment)
                if on_segment is not None:
                    on_segment(segment)
                if cancel is not None and cancel.cancelled:
                    raise _Cancelled

        language = kwargs["language"] or ""
        if kwargs.get("clip_timestamps") == []:  # the VAD heard no speech: nothing to decode
            return Result("", language or "en", duration, (), 0.0, options.task)

        def decode() -> dict[str, Any]:
            ensure_stream(self._mx)
            with self._streaming(take):
                output: dict[str, Any] = self._mlx_whisper.transcribe(audio, **kwargs)
            return output

        try:
            output = on_mlx_thread(decode)
            take(list(output.get("segments") or ()))
            language = str(output.get("language") or language)
        except _Cancelled:
            pass
        return Result(
            text="".join(s.text for s in segments).strip(),
            language=language,
            duration=duration,
            segments=tuple(segments),
            language_probability=1.0 if options.language else 0.0,
            task=options.task,
        )

    @contextmanager
    def _streaming(self, take: Callable[[list[dict[str, Any]]], None]) -> Iterator[None]:
        """Point mlx-whisper's holder at this model and hook its per-window progress bar."""
        module = sys.modules.get("mlx_whisper.transcribe")
        holder = getattr(module, "ModelHolder", None)
        if holder is not None:
            holder.model, holder.model_path = self._model, self.path
        original = getattr(module, "tqdm", None)
        if module is None or original is None:
            yield
            return
        module.tqdm = SimpleNamespace(tqdm=_Progress(take))  # type: ignore[attr-defined]
        try:
            yield
        finally:
            module.tqdm = original  # type: ignore[attr-defined]

    def scorer(self, audio: np.ndarray, language: str | None) -> None:
        """mlx-whisper has no forced decoding: candidates are chosen by their words alone."""
        return None

    def unload(self) -> None:
        on_mlx_thread(self._unload)

    def _unload(self) -> None:
        model, self._model = self._model, None
        holder = getattr(sys.modules.get("mlx_whisper.transcribe"), "ModelHolder", None)
        if holder is not None and holder.model is model:
            holder.model, holder.model_path = None, None
        del model
        gc.collect()
        clear_mlx_cache(self._mx)


def convert_segment(item: dict[str, Any], index: int) -> Segment | None:
    """An mlx-whisper segment dict -> Segment; None for the empty ones it leaves in place."""
    text = str(item.get("text") or "")
    if not text.strip():
        return None
    words = tuple(
        Word(
            str(w["word"]),
            round(float(w["start"]), 3),
            round(float(w["end"]), 3),
            round(float(w.get("probability", 0.0)), 4),
        )
        for w in item.get("words") or ()
    )
    return Segment(
        id=index,
        seek=int(item.get("seek", 0)),
        start=round(float(item["start"]), 3),
        end=round(float(item["end"]), 3),
        text=text,
        tokens=tuple(int(t) for t in item.get("tokens") or ()),
        temperature=float(item.get("temperature") or 0.0),
        avg_logprob=float(item.get("avg_logprob", 0.0)),
        compression_ratio=float(item.get("compression_ratio", 0.0)),
        no_speech_prob=float(item.get("no_speech_prob", 0.0)),
        words=words,
    )


def speech_clips(audio: np.ndarray) -> list[float] | None:
    """Start/end seconds of speech by the Silero VAD that faster-whisper ships; None without it.

    mlx-whisper decodes only these clips (``clip_timestamps``) and keeps timestamps absolute.
    """
    try:
        from .faster_whisper_internals import speech_spans
    except ImportError:
        return None
    spans = speech_spans(audio)
    return [round(s[k] / SAMPLE_RATE, 3) for s in spans for k in ("start", "end")]


class MlxBackend:
    name = "mlx"
    # mlx-whisper's AudioEncoder asserts its input is exactly 30 s (it adds a fixed 1500-position
    # embedding), so every window is encoded at full length.
    encoder_window = "full"

    def __init__(self, compute_type: str = "float16") -> None:
        self.fp16 = compute_type != "float32"

    def resolve(self, name: str, cache_dir: Path | None = None) -> str:
        return resolve_mlx(name, cache_dir)

    def load(self, model_path: str) -> MlxModel:
        return on_mlx_thread(self._load, model_path)

    def _load(self, model_path: str) -> MlxModel:
        mlx_whisper = importlib.import_module("mlx_whisper")
        mx = importlib.import_module("mlx.core")
        ensure_stream(mx)
        load_model = importlib.import_module("mlx_whisper.load_models").load_model
        model = load_model(model_path, dtype=mx.float16 if self.fp16 else mx.float32)
        return MlxModel(mlx_whisper, mx, model, model_path, self.fp16)
