"""bench/longfile.py: the joined recording and reference, and the comparison with the library."""

from __future__ import annotations

import io
import math
import wave
from pathlib import Path

import numpy as np

from bench.longfile import BASELINE, RATE, Row, build_recording, compare
from tests.harness import Clip

# Three tiny synthetic clips (no shared audio needed): 0.25 s, 0.5 s and 1 s of constant level.
AUDIO = {
    Path("/set/a/one.wav"): np.full(RATE // 4, 0.25, dtype=np.float32),
    Path("/set/b/two.wav"): np.full(RATE // 2, -0.5, dtype=np.float32),
    Path("/set/c/three.wav"): np.full(RATE, 0.125, dtype=np.float32),
}
CLIPS = [
    Clip(path, "en", len(audio) / RATE, text)
    for (path, audio), text in zip(
        AUDIO.items(), (" One, two. ", "Three?", "four five"), strict=True
    )
]


def test_clips_are_joined_with_half_second_pauses_and_their_references_with_spaces() -> None:
    recording = build_recording(CLIPS, AUDIO.__getitem__)
    pause = RATE // 2
    assert len(recording.pcm) == RATE // 4 + pause + RATE // 2 + pause + RATE
    assert math.isclose(recording.seconds, 2.75)
    assert recording.reference == "One, two. Three? four five"
    assert recording.clips == ["a/one.wav", "b/two.wav", "c/three.wav"]
    samples = recording.samples()
    assert samples.dtype == np.float32
    assert np.all(samples[: RATE // 4] == 0.25)
    assert np.all(samples[RATE // 4 : RATE // 4 + pause] == 0.0)  # the pause: silence
    assert np.all(samples[RATE // 4 + pause : RATE // 4 + pause + RATE // 2] == -0.5)
    assert np.all(samples[-RATE:] == 0.125)  # no pause after the last clip


def test_seconds_keeps_the_first_clips_that_fit_and_never_none() -> None:
    two = build_recording(CLIPS, AUDIO.__getitem__, seconds=1.3)  # 0.25 + 0.5 + 0.5 = 1.25
    assert two.clips == ["a/one.wav", "b/two.wav"]
    assert two.reference == "One, two. Three?"
    assert math.isclose(two.seconds, 1.25)
    one = build_recording(CLIPS, AUDIO.__getitem__, seconds=0.1)  # shorter than the first clip
    assert one.clips == ["a/one.wav"]


def test_the_upload_is_16_khz_mono_pcm_of_the_same_samples() -> None:
    recording = build_recording(CLIPS, AUDIO.__getitem__)
    with wave.open(io.BytesIO(recording.wav())) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    np.testing.assert_array_equal(frames.astype(np.float32) / 32768.0, recording.samples())


def test_rows_are_compared_with_the_sequential_library() -> None:
    rows = [
        Row("m", "ours (HTTP upload)", 5.0, 60.0, 12.0, 6, 50, ""),
        Row("m", BASELINE, 10.0, 60.0, 10.0, 5, 50, ""),
        Row("m", "library, batched 4", 4.0, 60.0, 14.0, 7, 50, ""),
    ]
    compare(rows)
    assert [r.time_ratio for r in rows] == [0.5, 1.0, 0.4]
    assert [r.wer_points for r in rows] == [2.0, 0.0, 4.0]
    assert rows[2].realtime == 15.0
