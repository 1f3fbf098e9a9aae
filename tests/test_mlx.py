"""MlxBackend's own logic through its real code: option mapping, the model holder, unload, and
model resolution (mlx-community repositories, --cache-dir). mlx_whisper is the fake where needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from wyoming_whisper.audio import read_file
from wyoming_whisper.backends.base import PROMPT_TOKEN_BUDGET, TranscribeOptions
from wyoming_whisper.backends.ctranslate2_models import ModelResolutionError
from wyoming_whisper.backends.faster_whisper import FasterWhisperBackend
from wyoming_whisper.backends.mlx import MLX_REPOS, MlxBackend, MlxModel, resolve_mlx

from . import fake_mlx
from .harness import clip, words

TINY_EN = FasterWhisperBackend("cpu", 0, "int8").resolve("tiny.en")  # the fake's weights


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> object:
    return fake_mlx.install(monkeypatch)


@pytest.fixture
def model(fake: object) -> Iterator[MlxModel]:
    loaded = MlxBackend("float16").load(TINY_EN)
    yield loaded
    loaded.unload()


def test_options_map_onto_mlx_whisper(fake, model: MlxModel) -> None:  # type: ignore[no-untyped-def]
    audio = read_file(str(clip("whisper_cpp/jfk.wav")))
    options = TranscribeOptions(
        language="de",  # ignored: an English-only model is told "en"
        initial_prompt="The inaugural address.",
        hotwords=("Americans", " ", "country"),
        temperature=(0.0, 0.4),
        beam_size=5,  # mlx-whisper decodes greedily: not passed
        condition_on_previous_text=False,
    )
    result = model.transcribe(audio, options)
    call = fake.transcribe.CALLS[-1]
    assert call["path_or_hf_repo"] == TINY_EN and call["verbose"] is None
    assert call["language"] == "en" and call["task"] == "transcribe" and call["fp16"] is True
    assert call["temperature"] == (0.0, 0.4) and "beam_size" not in call
    assert call["initial_prompt"] == "Americans, country. The inaugural address."
    assert call["condition_on_previous_text"] is False and call["word_timestamps"] is False
    assert call["clip_timestamps"] == "0"  # no VAD asked: the whole clip
    assert "fellow americans" in " ".join(words(result.text))
    model.transcribe(audio, TranscribeOptions(temperature=(0.2,)))
    assert fake.transcribe.CALLS[-1]["temperature"] == 0.2


def test_one_load_and_the_holder_points_at_the_served_model(fake, model: MlxModel) -> None:  # type: ignore[no-untyped-def]
    audio = read_file(str(clip("whisper_cpp/jfk.wav")))[: 16000 * 3]
    model.transcribe(audio, TranscribeOptions())
    model.transcribe(audio, TranscribeOptions())
    assert fake.transcribe.LOADS == [(TINY_EN, "float16")]  # loaded once, by load(), not per call
    assert fake.transcribe.ModelHolder.model is model._model


def test_vad_filter_decodes_only_speech(fake, model: MlxModel) -> None:  # type: ignore[no-untyped-def]
    speech = read_file(str(clip("whisper_cpp/jfk.wav")))
    audio = np.concatenate([np.zeros(16000 * 8, np.float32), speech])
    result = model.transcribe(audio, TranscribeOptions(vad_filter=True))
    clips = fake.transcribe.CALLS[-1]["clip_timestamps"]
    assert isinstance(clips, list) and len(clips) % 2 == 0 and clips[0] >= 7.5
    assert result.segments[0].start >= 7.5  # timestamps stay on the original audio's clock
    silence = model.transcribe(np.zeros(16000 * 3, np.float32), TranscribeOptions(vad_filter=True))
    assert silence.text == "" and not silence.segments


def test_unload_frees_the_model_and_clears_mlx_cache(fake) -> None:  # type: ignore[no-untyped-def]
    loaded = MlxBackend("float32").load(TINY_EN)
    loaded.transcribe(np.zeros(16000, np.float32), TranscribeOptions())
    assert fake.transcribe.ModelHolder.model is not None
    loaded.unload()
    assert fake.transcribe.ModelHolder.model is None  # mlx-whisper's holder lets go too
    assert fake.core.STATE["cache_clears"] == 1
    with pytest.raises(RuntimeError, match="unloaded"):
        loaded.transcribe(np.zeros(16000, np.float32), TranscribeOptions())


def test_repositories_cover_the_model_names() -> None:
    for name in ("tiny", "tiny.en", "base", "small", "medium", "large-v2", "large-v3"):
        assert MLX_REPOS[name].startswith("mlx-community/whisper-")
    assert (
        MLX_REPOS["large-v3-turbo"] == MLX_REPOS["turbo"] == "mlx-community/whisper-large-v3-turbo"
    )
    assert MLX_REPOS["distil-large-v3"] == "mlx-community/distil-whisper-large-v3"
    assert MlxBackend().resolve.__func__ is not FasterWhisperBackend.resolve  # type: ignore[attr-defined]


def _hub_cache(root: Path, repo: str, files: dict[str, bytes]) -> Path:
    """A Hugging Face cache entry, laid out as huggingface_hub writes it."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    entry = root / f"models--{repo.replace('/', '--')}"
    snapshot = entry / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text(commit)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)
    return snapshot


def test_resolve_finds_the_repository_in_the_cache_dir(tmp_path: Path) -> None:
    snapshot = _hub_cache(
        tmp_path,
        "mlx-community/whisper-large-v3-turbo",
        {"config.json": b"{}", "weights.safetensors": b"x"},
    )
    assert resolve_mlx("large-v3-turbo", tmp_path, download=False) == str(snapshot)
    assert resolve_mlx("mlx-community/whisper-large-v3-turbo", tmp_path, download=False) == str(
        snapshot
    )
    with pytest.raises(ModelResolutionError, match="whisper-small-mlx"):
        resolve_mlx("small", tmp_path, download=False)


def test_resolve_directories_and_unknown_names(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    (good / "config.json").write_text("{}")
    (good / "weights.npz").write_bytes(b"x")
    assert resolve_mlx(str(good)) == str(good)
    with pytest.raises(ModelResolutionError, match="not an mlx Whisper model directory"):
        resolve_mlx(TINY_EN)  # a CTranslate2 directory is not an mlx one
    with pytest.raises(ModelResolutionError, match="unknown to the mlx backend"):
        resolve_mlx("enormous-v9")


def test_names_fit_the_prompt_budget_beside_the_clients_prompt(fake, model: MlxModel) -> None:  # type: ignore[no-untyped-def]
    """mlx-whisper keeps the end of a prompt that is too long: the names lead it, so without a
    budget the first (most important) names would be the ones cut."""
    names = tuple(f"Zorblax lamp number {n}" for n in range(200))
    prompt = "The inaugural address."
    kwargs = model.decode_kwargs(np.zeros(16000, np.float32), TranscribeOptions(
        initial_prompt=prompt, hotwords=names
    ))  # fmt: skip
    text = kwargs["initial_prompt"]
    assert text.startswith("Zorblax lamp number 0, Zorblax lamp number 1,")
    assert text.endswith(". " + prompt)
    tokenizer = fake_mlx.tokenizer.get_tokenizer(False, num_languages=model._model.num_languages)
    tokens = len(tokenizer.encode(" " + text))
    assert 200 <= tokens <= PROMPT_TOKEN_BUDGET
