"""Batched long-form decoding with the real tiny.en (backends/long_form_decode.py): a recording
of committed clips past the threshold decodes through it in order, covering the speech, close to
the sequential path's text; a cancelled decode stops between batches."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from bench.wer import edit_distance, normalize
from wyoming_whisper.audio import read_file
from wyoming_whisper.backends import long_form, long_form_decode
from wyoming_whisper.backends.base import SAMPLE_RATE, CancelToken, Segment, TranscribeOptions
from wyoming_whisper.backends.faster_whisper import FasterWhisperBackend, FasterWhisperModel
from wyoming_whisper.backends.long_form import LONG_FORM_SECONDS

from .harness import clip

CLIPS = [
    *(f"coqui_tts_ljspeech/LJ001-00{n:02d}.flac" for n in (1, 2, 3, 5, 7, 8, 9)),
    "lhotse/2412-153948-0000.flac",
    "deepspeech/LDC93S1.wav",
]
PAUSE = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)


@pytest.fixture(scope="module")
def recording() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The clips joined with 0.5 s pauses (65 s), and where each clip lies (seconds)."""
    pieces, places, at = [], [], 0.0
    for relpath in CLIPS:
        samples = read_file(str(clip(relpath)))
        places.append((at, at + len(samples) / SAMPLE_RATE))
        pieces += [samples, PAUSE]
        at += (len(samples) + len(PAUSE)) / SAMPLE_RATE
    audio = np.concatenate(pieces)
    assert len(audio) > LONG_FORM_SECONDS * SAMPLE_RATE
    return audio, places


@pytest.fixture(scope="module")
def model() -> Iterator[FasterWhisperModel]:
    backend = FasterWhisperBackend("cpu", 0, "int8", cpu_threads=1)
    loaded = backend.load(backend.resolve("tiny.en"))
    yield loaded
    loaded.unload()


def batched_calls(model: FasterWhisperModel, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    long_form = model._long_form
    assert long_form is not None
    real = long_form.transcribe
    monkeypatch.setattr(long_form, "transcribe", lambda *a, **k: calls.append(a) or real(*a, **k))
    return calls


def wer(reference: str, hypothesis: str) -> float:
    ref = normalize(reference)
    return edit_distance(ref, normalize(hypothesis)) / len(ref)


def test_a_long_recording_decodes_in_batches_like_the_sequential_path(
    model: FasterWhisperModel,
    recording: tuple[np.ndarray, list[tuple[float, float]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    audio, places = recording
    calls = batched_calls(model, monkeypatch)
    streamed: list[Segment] = []
    result = model.transcribe(audio, TranscribeOptions(), streamed.append)
    assert len(calls) == 1
    segments = list(result.segments)
    assert segments == streamed  # given out as they were final, in order
    assert [s.id for s in segments] == list(range(len(segments)))
    for a, b in itertools.pairwise(segments):
        assert a.start <= a.end <= b.start <= b.end
    assert all(s.tokens and s.text.strip() and s.avg_logprob < 0 for s in segments)
    for start, end in places:  # every clip's speech has a segment
        assert any(s.start < end and start < s.end for s in segments), (start, end)
    assert result.duration == pytest.approx(len(audio) / SAMPLE_RATE)
    assert result.language == "en" and result.text.startswith("Printing")
    # Word timestamps keep the library's sequential path: the same words, nearly.
    sequential = model.transcribe(audio, TranscribeOptions(word_timestamps=True))
    assert len(calls) == 1 and sequential.words
    assert wer(sequential.text, result.text) < 0.1, (sequential.text, result.text)


def test_cancel_stops_the_batched_decode_between_batches(
    model: FasterWhisperModel,
    recording: tuple[np.ndarray, list[tuple[float, float]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    audio, _ = recording
    calls = batched_calls(model, monkeypatch)
    token = CancelToken()
    streamed: list[Segment] = []

    def on_segment(segment: Segment) -> None:
        streamed.append(segment)
        token.cancel()

    result = model.transcribe(audio, TranscribeOptions(), on_segment, token)
    assert len(calls) == 1
    assert result.segments and list(result.segments) == streamed
    assert result.segments[-1].end <= 31.0  # nothing decoded past the first batch's chunk


def test_two_lanes_decode_apart_on_two_replicas(
    model: FasterWhisperModel,
    recording: tuple[np.ndarray, list[tuple[float, float]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the CPU each lane has a replica of its own (two workers: two replicas, whatever the
    cores) and goes at its own pace; the segments still come out in order, every clip's speech
    covered, the text as one lane decodes it, nearly."""
    audio, places = recording
    one_lane = model.transcribe(audio, TranscribeOptions())
    backend = FasterWhisperBackend("cpu", 0, "int8", num_workers=2, cpu_threads=1)
    model = backend.load(backend.resolve("tiny.en"))
    real_lanes = long_form.lanes
    monkeypatch.setattr(long_form, "lanes", lambda count, batch: real_lanes(count, batch, 1))
    threads: dict[int, str] = {}
    real_lane = long_form_decode._Run._lane

    def lane(run: Any, n: int, cancel: CancelToken | None) -> None:
        threads[n] = threading.current_thread().name
        real_lane(run, n, cancel)

    monkeypatch.setattr(long_form_decode._Run, "_lane", lane)
    streamed: list[Segment] = []
    result = model.transcribe(audio, TranscribeOptions(), streamed.append)
    assert len(threads) == 2 and threads[0] != threads[1], threads
    segments = list(result.segments)
    assert segments == streamed and [s.id for s in segments] == list(range(len(segments)))
    for a, b in itertools.pairwise(segments):
        assert a.start <= a.end <= b.start <= b.end
    for start, end in places:
        assert any(s.start < end and start < s.end for s in segments), (start, end)
    assert wer(one_lane.text, result.text) < 0.1, (one_lane.text, result.text)

    token = CancelToken()  # cancelled at the first segment: both lanes stop after their chunk
    cancelled = model.transcribe(audio, TranscribeOptions(), lambda _: token.cancel(), token)
    assert cancelled.segments and cancelled.segments[-1].end <= 31.0
    model.unload()


def test_a_long_recording_s_vad_runs_in_two_parts_at_once_and_hears_the_same_speech(
    recording: tuple[np.ndarray, list[tuple[float, float]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past two minutes the second half's VAD runs on another thread while the first half's
    runs; the spans cover the speech the whole recording's single pass hears (Silero's state
    differs from a window or two where the second part starts)."""
    audio = np.concatenate([recording[0], recording[0]])  # 130 s
    whole = [
        (s["start"], s["end"])
        for s in long_form_decode.speech_spans(audio, **long_form.VAD_OPTIONS)
    ]
    calls: list[tuple[int, str]] = []
    real = long_form_decode.speech_spans

    def spy(part: np.ndarray, **vad: Any) -> list[dict[str, int]]:
        calls.append((len(part), threading.current_thread().name))
        return real(part, **vad)

    monkeypatch.setattr(long_form_decode, "speech_spans", spy)
    joined = long_form_decode._spans(audio)
    parts = long_form.vad_parts(len(audio))
    assert parts is not None
    assert sorted(n for n, _ in calls) == sorted([parts.first_end, len(audio) - parts.second_start])
    assert len({thread for _, thread in calls}) == 2
    speech = sum(e - s for s, e in whole)
    assert abs(sum(e - s for s, e in joined) - speech) < 0.02 * speech
    for s, e in whole:
        assert any(js < e and s < je for js, je in joined), (s, e)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(joined))
