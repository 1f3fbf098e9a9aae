"""The backend contract, run against every backend: faster-whisper on the real tiny.en pack, mlx
through its real code with only mlx_whisper's Metal-bound entry points faked (tests/fake_mlx), and
mlx for real (CPU build of MLX, tiny.en converted from the CTranslate2 pack) where it is installed.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from wyoming_whisper.audio import read_file
from wyoming_whisper.backends.base import (
    Backend,
    CancelToken,
    LoadedModel,
    Segment,
    TranscribeOptions,
)
from wyoming_whisper.backends.faster_whisper import FasterWhisperBackend
from wyoming_whisper.backends.mlx import MlxBackend

from . import fake_mlx
from .ct2_to_mlx import convert
from .harness import LONG_CLIPS, clip, load_manifest, words

REAL_MLX = importlib.util.find_spec("mlx_whisper") is not None and (
    importlib.util.find_spec("mlx") is not None
)
JFK = "openai_whisper/jfk.flac"


def reference(relpath: str) -> str:
    return next(c.reference for c in load_manifest() if c.path == clip(relpath))


def overlap(text: str, ref: str) -> float:
    got, want = set(words(text)), words(ref)
    return sum(w in got for w in want) / len(want)


@pytest.fixture(scope="module", params=["faster-whisper", "mlx-fake", "mlx-real"])
def backend_model(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Backend, LoadedModel]]:
    kind = request.param
    with pytest.MonkeyPatch.context() as mp:
        if kind == "faster-whisper":
            backend: Backend = FasterWhisperBackend("cpu", 0, "int8")
            path = backend.resolve("tiny.en")
        elif kind == "mlx-fake":
            fake_mlx.install(mp)
            backend = MlxBackend("float16")
            path = FasterWhisperBackend("cpu", 0, "int8").resolve("tiny.en")  # the fake's weights
        else:
            if not REAL_MLX:
                pytest.skip("mlx and mlx-whisper are not installed (see docs/macos.md, Linux CPU)")
            backend = MlxBackend("float32")  # fp16 matmuls on MLX's CPU backend are slower
            ct2 = Path(FasterWhisperBackend("cpu", 0, "int8").resolve("tiny.en"))
            path = backend.resolve(str(convert(ct2, tmp_path_factory.mktemp("mlx") / "tiny.en")))
        model = backend.load(path)
        yield backend, model
        model.unload()


@pytest.fixture(scope="module")
def jfk_run(backend_model: tuple[Backend, LoadedModel]) -> tuple[object, list[Segment]]:
    """One decode per backend, with words, reused by the shape tests (mlx on a CPU is slow)."""
    _, model = backend_model
    streamed: list[Segment] = []
    result = model.transcribe(
        read_file(str(clip(JFK))), TranscribeOptions(word_timestamps=True), streamed.append
    )
    return result, streamed


def test_transcript_and_result_shape(jfk_run) -> None:  # type: ignore[no-untyped-def]
    result, streamed = jfk_run
    assert overlap(result.text, reference(JFK)) >= 0.9, result.text
    assert result.language == "en"
    assert result.task == "transcribe"
    assert result.duration == pytest.approx(11.0, abs=0.05)
    assert result.segments and result.text == "".join(s.text for s in result.segments).strip()
    assert list(result.segments) == streamed  # on_segment saw every segment, in order
    for i, seg in enumerate(result.segments):
        assert seg.id == i
        assert isinstance(seg.seek, int) and isinstance(seg.text, str) and seg.text.strip()
        assert 0.0 <= seg.start < seg.end <= result.duration + 0.5
        assert all(isinstance(t, int) for t in seg.tokens) and seg.tokens
        for value in (seg.temperature, seg.avg_logprob, seg.compression_ratio, seg.no_speech_prob):
            assert isinstance(value, float)
        assert seg.avg_logprob <= 0.0 and 0.0 <= seg.no_speech_prob <= 1.0
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts)


def test_words_when_asked(jfk_run) -> None:  # type: ignore[no-untyped-def]
    result, _ = jfk_run
    found = result.words
    assert [w for w in words("".join(w.word for w in found))][:4] == ["and", "so", "my", "fellow"]
    for w in found:
        assert 0.0 <= w.start <= w.end <= result.duration + 0.5
        assert 0.0 <= w.probability <= 1.0
    assert found[-1].end > 9.0  # the last word ("country") ends near the end of the clip


@pytest.fixture(scope="module")
def cancelled_run(backend_model: tuple[Backend, LoadedModel]) -> tuple[object, list[Segment]]:
    """Two 30 s windows of different sentences, without words, the client gone after the first
    segment: one decode per backend for the cancellation and no-words tests (mlx on a CPU is
    slow). One clip repeated would read as repetitive, and real mlx would retry the window at
    every temperature."""
    _, model = backend_model
    audio = np.concatenate([read_file(str(clip(c))) for c in LONG_CLIPS])
    token = CancelToken()
    streamed: list[Segment] = []

    def on_segment(segment: Segment) -> None:
        streamed.append(segment)
        token.cancel()

    return model.transcribe(audio, TranscribeOptions(), on_segment, token), streamed


def test_no_words_unless_asked(cancelled_run) -> None:  # type: ignore[no-untyped-def]
    result, _ = cancelled_run
    assert result.segments and not result.words
    assert all(not segment.words for segment in result.segments)


def test_english_only_model_says_so(backend_model) -> None:  # type: ignore[no-untyped-def]
    _, model = backend_model
    assert model.is_multilingual is False  # tiny.en


def test_cancel_stops_between_segments(cancelled_run) -> None:  # type: ignore[no-untyped-def]
    result, streamed = cancelled_run
    assert result.segments and list(result.segments) == streamed
    assert result.segments[-1].end < 31.0  # nothing decoded past the first window


def test_translate_with_a_multilingual_model(request) -> None:  # type: ignore[no-untyped-def]
    """task=translate reaches the model (base, multilingual) and comes back as English."""
    relpath = "picovoice_leopard/test_es.flac"
    audio = read_file(str(clip(relpath)))
    base = FasterWhisperBackend("cpu", 0, "int8").resolve("base")
    with pytest.MonkeyPatch.context() as mp:
        fake = fake_mlx.install(mp)
        for backend in (FasterWhisperBackend("cpu", 0, "int8"), MlxBackend()):
            model = backend.load(base)
            try:
                assert model.is_multilingual
                result = model.transcribe(audio, TranscribeOptions(language="es", task="translate"))
            finally:
                model.unload()
            assert result.task == "translate" and result.language == "es"
            assert re.fullmatch(r"[\x20-\x7e]+", result.text), result.text  # English letters
            assert {"sand", "sands", "white"} & set(words(result.text)), result.text
        assert fake.transcribe.CALLS[-1]["task"] == "translate"


def test_the_scorer_hears_which_command_was_said(
    backend_model: tuple[Backend, LoadedModel],
) -> None:
    """tests/data/assist/command-008.flac says "Turn off the Glimmerholt strip" (espeak-ng, a
    voice tiny.en hears as "Door after the Dlimmerholt strip"): forced through each text, the
    decoder finds the words said likelier than the opposite command and than a far sentence.
    mlx has no forced decoding: no scorer."""
    backend, model = backend_model
    scorer = model.scorer(read_file(str(clip("assist/command-008.flac"))), "en")
    if backend.name != "faster-whisper":
        assert scorer is None
        return
    assert scorer is not None
    said, opposite, far = scorer(
        [
            "Turn off the Glimmerholt strip.",
            "Turn on the Glimmerholt strip.",
            "What is the capital of Australia?",
        ]
    )
    assert said.logprob > max(opposite.logprob, far.logprob), (said, opposite, far)
    assert said.tokens == opposite.tokens > 0  # "off" and "on": one token each
    assert scorer([]) == []
