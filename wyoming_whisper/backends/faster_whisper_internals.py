"""faster-whisper's names beyond its public API (``faster_whisper.__all__``), in one place.

What the server relies on, and where:

- the Silero VAD that faster-whisper ships: its ONNX session, that session's inputs and
  recurrent state (``streaming.SileroStream`` runs it window by window), the model loaded once
  per process (the faster-whisper backend loads it with the first model), and
  ``get_speech_timestamps`` with ``VadOptions`` (the mlx backend's speech clips);
- the hub's table of short names, ``utils._MODELS`` (``ctranslate2_models``);
- ``WhisperModel``'s attributes ``model`` (the CTranslate2 model), ``feature_extractor`` and
  ``hf_tokenizer``, its ``encode``, ``audio.pad_or_trim`` and ``tokenizer.Tokenizer`` (the
  faster-whisper backend's scorer, hotwords and unload);
- the methods ``encoder_window.FittedWhisperModel`` overrides or wraps (``generate_segments``,
  ``encode``, ``generate_with_fallback``), ``max_length`` and ``TranscriptionOptions``' fields;
- for ``long_form``'s batched decoding: ``get_speech_timestamps`` with other ``VadOptions``
  (``speech_spans``), the ``Tokenizer``'s special tokens (``TOKENIZER_NAMES``) and
  ``transcribe.get_suppressed_tokens`` (what the library's ``suppress_tokens=[-1]`` means).

``CHECKED`` is the range of versions all this was read against (pyproject.toml pins the same);
``contract_problems`` says what no longer holds, and tests/test_encoder_window.py fails loudly on
it after an upgrade. At run time only the encoder window is checked (``window_problems``): when it
fails, the server decodes with the library's own 30 s window.

Importing this module imports faster-whisper: the streaming package does so at start-up, on the main
thread, because importing faster_whisper for the first time in two threads at once (a model load
and a stream's VAD) can fail half-way.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import sys
import threading
import types
from typing import Any

import numpy as np


class _Deferred(types.ModuleType):
    """PyAV until someone uses it: its first attribute imports the real module in its place."""

    _lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # any name but the module's own, here
        with self._lock:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
                try:
                    importlib.import_module(self.__name__)  # the real module, in sys.modules
                except BaseException:
                    sys.modules[self.__name__] = self
                    raise
        return getattr(sys.modules[self.__name__], name)


def _defer_pyav() -> None:
    """Leave PyAV unloaded until it is used. faster-whisper imports it with itself, for
    ``decode_audio``, which the server never calls (audio.py reads uploads), and it costs 17 MB
    of RSS that a server of raw PCM (Home Assistant's Wyoming) never needs. (importlib's
    LazyLoader will not do: on Python 3.11 the ``import av`` statement itself loads it.)"""
    if "av" not in sys.modules and importlib.util.find_spec("av") is not None:
        sys.modules["av"] = _Deferred("av")


_defer_pyav()  # before faster-whisper's first import, below

from faster_whisper.vad import get_vad_model  # noqa: E402

CHECKED = ((1, 2, 1), (1, 3, 0))  # faster-whisper versions: from (inclusive) .. to (exclusive)
SILERO_INPUTS = ("input", "h", "c")  # the windows (with context), then the recurrent state
SILERO_STATE_SHAPE = (1, 1, 128)  # h and c, as SileroVADModel.__call__ starts them


# --- the Silero VAD ----------------------------------------------------------------------


class SileroSession:
    """faster-whisper's Silero VAD session (one for the process) with one caller's recurrent
    state, carried from one run to the next. Blocking (ONNX): call from a worker thread."""

    def __init__(self) -> None:
        self._session = get_vad_model().session
        self._h = np.zeros(SILERO_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(SILERO_STATE_SHAPE, dtype=np.float32)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Speech probability of each row of ``batch`` (a window with its context before it)."""
        out, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        return np.asarray(out, dtype=np.float32).reshape(-1)


def load_silero() -> None:
    """Load the Silero VAD now (cached for the process), so that no request pays for it."""
    get_vad_model()


def speech_spans(audio: np.ndarray, **vad: Any) -> list[dict[str, int]]:
    """Silero's speech spans in 16 kHz ``audio`` (``start``/``end`` in samples), with
    faster-whisper's default VAD options (what its own ``vad_filter`` keeps) but for those in
    ``vad`` (``VadOptions``' fields: ``min_silence_duration_ms``, ``speech_pad_ms``,
    ``max_speech_duration_s``)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    return list(get_speech_timestamps(audio, VadOptions(**vad)))


# --- the hub's short names ---------------------------------------------------------------


def hub_repositories() -> dict[str, str]:
    """Short model names ``download_model`` understands, mapped to their hub repositories."""
    from faster_whisper.utils import _MODELS

    return dict(_MODELS)


# --- a loaded WhisperModel ---------------------------------------------------------------


def ctranslate2_model(model: Any) -> Any:
    """The ``ctranslate2.models.Whisper`` inside a ``WhisperModel`` (CTranslate2's own API from
    there on: ``is_multilingual``, ``num_workers``, ``align``, ``unload_model``)."""
    return model.model


def text_tokenizer(model: Any) -> Any:
    """The model's Hugging Face ``tokenizers.Tokenizer`` (what the hotwords' budget counts)."""
    return model.hf_tokenizer


# The Tokenizer's names long_form uses (beside ``encode`` and ``sot_sequence``).
TOKENIZER_NAMES = ("sot_prev", "timestamp_begin", "eot", "decode", "non_speech_tokens")


def whisper_tokenizer(
    model: Any, multilingual: bool, language: str, task: str = "transcribe"
) -> Any:
    """faster-whisper's ``Tokenizer`` for ``task`` in ``language``: its ``sot_sequence`` and
    ``encode`` (text -> token ids) are what a forced decoder pass needs; ``TOKENIZER_NAMES``
    what a decode's prompt and its tokens' reading need (special tokens, ``decode``)."""
    from faster_whisper.tokenizer import Tokenizer

    return Tokenizer(text_tokenizer(model), multilingual, task=task, language=language)


def suppressed_tokens(tokenizer: Any) -> tuple[int, ...]:
    """The tokens the library suppresses by default (``suppress_tokens=[-1]``: non-speech
    symbols and the special tokens), for a ``Tokenizer``."""
    from faster_whisper.transcribe import get_suppressed_tokens

    return tuple(get_suppressed_tokens(tokenizer, [-1]) or ())


def log_mel(model: Any, audio: np.ndarray) -> np.ndarray:
    """The model's log-Mel features of ``audio``, unpadded."""
    features: np.ndarray = model.feature_extractor(audio)
    return features


def pad_to_window(features: np.ndarray) -> np.ndarray:
    """``features`` zero-padded (or cut) to Whisper's 30 s window, as the library does."""
    from faster_whisper.audio import pad_or_trim

    padded: np.ndarray = pad_or_trim(features)
    return padded


def library_encode(model: Any, features: np.ndarray) -> Any:
    """``WhisperModel.encode`` itself, never a subclass's (the fitted window's guard)."""
    from faster_whisper import WhisperModel

    return WhisperModel.encode(model, features)


# --- the contract ------------------------------------------------------------------------


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def version_problems() -> list[str]:
    """The installed faster-whisper's version, when it is outside ``CHECKED``."""
    import faster_whisper

    version = _version(faster_whisper.__version__)
    if CHECKED[0] <= version < CHECKED[1]:
        return []
    low, high = (".".join(map(str, v)) for v in CHECKED)
    return [f"faster-whisper {faster_whisper.__version__} is outside {low} <= v < {high}"]


def _missing(sources: dict[str, str], needed: dict[str, list[str]]) -> list[str]:
    return [
        f"{name} no longer has {snippet!r}"
        for name, snippets in needed.items()
        for snippet in snippets
        if snippet not in sources[name]
    ]


def window_problems() -> list[str]:
    """What the fitted encoder window relies on that the installed faster-whisper no longer
    provides (its version included): checked at run time, before the window is used."""
    from faster_whisper.transcribe import TranscriptionOptions, WhisperModel

    problems = version_problems()
    sources = {
        "generate_segments": inspect.getsource(WhisperModel.generate_segments),
        "detect_language": inspect.getsource(WhisperModel.detect_language),
        "transcribe": inspect.getsource(WhisperModel.transcribe),
    }
    problems += _missing(
        sources,
        {
            "generate_segments": [
                "segment = pad_or_trim(segment)",
                "encoder_output = self.encode(segment)",
                "self.generate_with_fallback(encoder_output, prompt, tokenizer, options)",
                # the opening window holds all frames but the last (detection reuses it)
                "content_frames = features.shape[-1] - 1",
                "segment = features[:, seek : seek + segment_size]",
            ],
            "detect_language": ["self.encode(", "pad_or_trim("],
            "transcribe": ["self.generate_segments(", "features=features[..., seek:]"],
        },
    )
    params = list(inspect.signature(WhisperModel.generate_with_fallback).parameters)
    if params != ["self", "encoder_output", "prompt", "tokenizer", "options"]:
        problems.append(f"generate_with_fallback takes {params}")
    params = list(inspect.signature(WhisperModel.detect_language).parameters)[:3]
    if params != ["self", "audio", "features"]:
        problems.append(f"detect_language takes {params}")
    fields = {f.name for f in dataclasses.fields(TranscriptionOptions)}
    wanted = {
        "temperatures",
        "max_new_tokens",
        "compression_ratio_threshold",
        "log_prob_threshold",
        "no_speech_threshold",
    }
    if not wanted <= fields:
        problems.append(f"TranscriptionOptions lacks {sorted(wanted - fields)}")
    return problems


def long_form_problems() -> list[str]:
    """What ``long_form``'s batched decoding relies on that the installed faster-whisper no
    longer provides (its version included): checked when a backend is made; when it fails,
    long audio is decoded the library's way."""
    import faster_whisper.transcribe as transcribe
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.vad import VadOptions

    problems = version_problems()
    missing = [name for name in TOKENIZER_NAMES if not hasattr(Tokenizer, name)]
    if missing:
        problems.append(f"Tokenizer lacks {missing}")
    if not callable(getattr(transcribe, "get_suppressed_tokens", None)):
        problems.append("transcribe.get_suppressed_tokens is gone")
    fields = {f.name for f in dataclasses.fields(VadOptions)}
    wanted = {"min_silence_duration_ms", "speech_pad_ms", "max_speech_duration_s"}
    if not wanted <= fields:
        problems.append(f"VadOptions lacks {sorted(wanted - fields)}")
    return problems


def contract_problems() -> list[str]:
    """Everything this module relies on that the installed faster-whisper no longer provides."""
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.utils import _MODELS

    problems = window_problems()
    problems += _missing(
        {"WhisperModel.__init__": inspect.getsource(WhisperModel.__init__)},
        {
            "WhisperModel.__init__": [
                "self.model = ctranslate2.models.Whisper(",
                "self.hf_tokenizer = ",
                "self.feature_extractor = FeatureExtractor(",
                "self.max_length = ",
            ]
        },
    )
    params = list(inspect.signature(Tokenizer).parameters)
    if params[:4] != ["tokenizer", "multilingual", "task", "language"]:
        problems.append(f"Tokenizer takes {params}")
    problems += long_form_problems()
    if not isinstance(_MODELS, dict) or "tiny.en" not in _MODELS:
        problems.append("utils._MODELS is no longer the table of short names")
    inputs = {i.name: i.shape for i in get_vad_model().session.get_inputs()}
    if tuple(inputs) != SILERO_INPUTS:
        problems.append(f"the Silero session takes {list(inputs)}")
    elif any(tuple(inputs[name]) != SILERO_STATE_SHAPE for name in SILERO_INPUTS[1:]):
        problems.append(f"the Silero session's state is {inputs['h']}, {inputs['c']}")
    return problems
