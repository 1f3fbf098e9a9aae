"""The pure parts of streaming: speech tracking, the final end point; Wyoming's chunk text.

The incremental VAD is checked against faster-whisper's own one-shot Silero run on a real clip.
"""

from __future__ import annotations

import gc
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from wyoming_whisper.http.websocket import split_eos
from wyoming_whisper.streaming import WINDOW, LiveText, SileroStream, SpeechTracker, final_end
from wyoming_whisper.streaming.live import Partial
from wyoming_whisper.transcript_chunks import ChunkText

from .harness import clip


def test_tracker_hysteresis_and_silence() -> None:
    t = SpeechTracker()
    t.update([0.1, 0.2])
    assert not t.heard_speech and t.silence_after_speech(t.position) == 0
    t.update([0.6, 0.4])  # 0.4 continues speech already under way
    assert t.heard_speech and t.speech_start == 2 * WINDOW and t.speech_end == 4 * WINDOW
    t.update([0.3, 0.45])  # 0.3 ends it; 0.45 does not start it again
    assert not t.voiced and t.speech_end == 4 * WINDOW
    assert t.silence_after_speech(t.position) == 2 * WINDOW
    t.update([0.9])
    assert t.voiced and t.speech_end == 7 * WINDOW
    assert t.silence_after_speech(t.position) == 0


def test_final_end_is_speech_end_plus_trail_capped_by_audio() -> None:
    t = SpeechTracker()
    assert final_end(t, 10_000, 4800) == 10_000  # no speech: everything
    t.update([0.9, 0.1, 0.1])
    assert final_end(t, 100_000, 4800) == WINDOW + 4800
    assert final_end(t, WINDOW + 100, 4800) == WINDOW + 100
    # More silence never moves the end point: this is what makes early decodes final.
    t.update([0.0] * 50)
    assert final_end(t, 1_000_000, 4800) == WINDOW + 4800


def test_preroll_shift() -> None:
    t = SpeechTracker()
    t.update([0.0] * 10)
    t.shift(4 * WINDOW)
    assert t.position == 6 * WINDOW
    t.update([0.8])
    assert t.speech_start == 6 * WINDOW


@pytest.mark.parametrize(
    "texts",
    [
        [" Hello there.", " How are you?"],
        ["  ", " Hi", "", " you ", " all. "],
        [" one,", "   ", " two."],
        [""],
    ],
)
def test_chunks_join_to_the_transcript(texts: list[str]) -> None:
    cutter = ChunkText()
    pieces = [cutter.feed(t) for t in texts]
    assert "".join(pieces) == "".join(texts).strip()
    assert all(p == "" or p.strip() for p in pieces)


def test_silero_stream_matches_one_shot_run() -> None:
    from faster_whisper.audio import decode_audio
    from faster_whisper.vad import get_vad_model

    audio = decode_audio(str(clip("whisper_cpp/jfk.wav")), sampling_rate=16000)
    whole = audio.shape[0] - audio.shape[0] % WINDOW
    expected = get_vad_model()(audio[:whole]).reshape(-1)
    vad = SileroStream()
    rng = np.random.default_rng(0)
    got: list[np.ndarray] = []
    pos = 0
    while pos < audio.shape[0]:
        step = int(rng.integers(1, 3000))
        got.append(vad.process(audio[pos : pos + step]))
        pos += step
    probs = np.concatenate(got)
    assert probs.shape == expected.shape
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert (probs > 0.5).mean() > 0.5  # the clip is mostly speech


def test_eos_alone_or_glued_to_the_last_audio() -> None:
    assert split_eos(b"EOS", 0) == (b"", True)
    assert split_eos(b"\x01\x02EOS", 0) == (b"\x01\x02", True)  # odd total: marker
    assert split_eos(b"\x01EOS", 1) == (b"\x01", True)  # after an odd-sized message
    # Even PCM that happens to end in the marker's bytes is audio.
    assert split_eos(b"\x00EOS", 0) == (b"\x00EOS", False)
    assert split_eos(b"\x00\x00", 0) == (b"\x00\x00", False)


async def test_an_utterance_is_freed_when_its_door_lets_go() -> None:
    """The door's record holds the stream, the stream holds ``LiveText.told``: the record is
    held weakly there, so the record and its audio go as soon as the door drops them, not at the
    next full garbage collection (which a busy server runs rarely: 36 utterances' buffers were
    found alive after 40 commands)."""

    @dataclass
    class Record:
        live: LiveText
        told: Any  # what a stream holds: its partial callback
        heard: list[str] = field(default_factory=list)

    async def listener(record: Record, partial: Partial) -> None:
        record.heard.append(record.live.take(partial))

    live = LiveText()
    record = Record(live, live.told)
    live.listen(listener, record)
    await record.told(Partial(text="turn on", committed="turn on", delta="turn on"))
    assert record.heard == ["turn on"] and live.sent == ["turn", "on"]

    gone = weakref.ref(record)
    enabled = gc.isenabled()
    gc.disable()
    try:
        del record
        assert gone() is None
    finally:
        if enabled:
            gc.enable()
    await live.told(
        Partial(text="turn on the", committed="turn on the", delta="the")
    )  # no record: nothing to tell
