"""Early decoding answers with exactly what a decode after audio-stop gives, on 10 clips.

The shared server decodes early (the default); a private one runs with --no-early-decoding. Each
clip is streamed followed by silence the way Home Assistant ends a command; three of them are two
sentences with a pause between, so an early decode starts, is overtaken by new speech and must be
redone. /health's counters show the early results were really the ones used.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from .harness import ServerProcess, clip
from .wyoming_client import load_pcm16, transcribe

SILENCE = np.zeros(int(0.7 * 16000), dtype="<i2").tobytes()
PAUSE = np.zeros(int(0.8 * 16000), dtype="<i2").tobytes()
SINGLE = [
    "speech_recognition/english.wav",
    "deepspeech/LDC93S1.wav",
    "lhotse/LJ002-0020.wav",
    "coqui_tts_ljspeech/LJ001-0002.flac",
    "coqui_tts_ljspeech/LJ001-0008.flac",
    "cuttledoc_fleurs/fleurs-en-004.ogg",
    "whisper_cpp/jfk.wav",
]
JOINED = [
    ("lhotse/LJ002-0035.wav", "speech_recognition/english.wav"),
    ("deepspeech/LDC93S1.wav", "coqui_tts_ljspeech/LJ001-0002.flac"),
    ("coqui_tts_ljspeech/LJ001-0013.flac", "lhotse/LJ002-0020.wav"),
]


def clips() -> list[bytes]:
    single = [load_pcm16(clip(c)) for c in SINGLE]
    joined = [load_pcm16(clip(a)) + PAUSE + load_pcm16(clip(b)) for a, b in JOINED]
    return [pcm + SILENCE for pcm in single + joined]


async def stream_paced(port: int, pcm: bytes, speed: float) -> str:
    """Stream at ``speed`` x real time so that decodes can start while audio still arrives."""
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient

    from .wyoming_client import read_until

    loop = asyncio.get_running_loop()
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        started = loop.time()
        step = 3200
        for i in range(0, len(pcm), step):
            await asyncio.sleep(max(0.0, started + i / 32000 / speed - loop.time()))
            chunk = AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i : i + step])
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        event = (await read_until(client, "transcript"))[-1]
    return str(event.data["text"])


async def test_early_decoding_gives_the_same_text(server: ServerProcess, start_server) -> None:
    late: ServerProcess = start_server(
        "-m", "tiny.en", "--preload", "--no-zeroconf", "--no-early-decoding"
    )
    audio = clips()
    assert len(audio) == 10
    before = server.health()["streaming"]
    early_texts = [await stream_paced(server.wyoming_port, pcm, speed=3.0) for pcm in audio]
    after = server.health()["streaming"]
    late_texts = [
        (await transcribe("127.0.0.1", late.wyoming_port, pcm)).data["text"] for pcm in audio
    ]
    assert late.health()["streaming"]["early_decodes"] == 0

    for early, late_text in zip(early_texts, late_texts, strict=True):
        assert early == late_text
        assert early.strip()
    hits = after["early_hits"] - before["early_hits"]
    started = after["early_decodes"] - before["early_decodes"]
    # Every clip ends in silence, so each had an early decode; nearly all must have been used
    # (one may miss when the worker was still busy with an overtaken decode at the last pause).
    assert started >= 10 + len(JOINED)
    assert hits >= 8, (before, after)


@pytest.mark.parametrize("pause", ["0.2", "0.6"])
async def test_pause_flag(start_server, pause: str) -> None:
    """--early-decoding-pause: a pause shorter than it starts no early decode."""
    srv: ServerProcess = start_server(
        "-m", "tiny.en", "--preload", "--no-zeroconf", "--early-decoding-pause", pause
    )
    pcm = load_pcm16(clip("deepspeech/LDC93S1.wav")) + np.zeros(int(0.45 * 16000), "<i2").tobytes()
    text = await stream_paced(srv.wyoming_port, pcm, speed=3.0)
    assert "greasy" in text.lower()
    stats = srv.health()["streaming"]
    if pause == "0.2":
        assert stats["early_decodes"] >= 1 and stats["early_hits"] == 1
    else:
        assert stats["early_decodes"] == 0 and stats["early_hits"] == 0


async def test_no_early_decode_for_a_burst(start_server) -> None:
    """A recording sent at once ends before an early decode could help: none is started."""
    srv: ServerProcess = start_server("-m", "tiny.en", "--preload", "--no-zeroconf")
    pcm = (
        load_pcm16(clip("lhotse/LJ002-0035.wav"))
        + PAUSE
        + load_pcm16(clip("deepspeech/LDC93S1.wav"))
    )
    text = (await transcribe("127.0.0.1", srv.wyoming_port, pcm + SILENCE)).data["text"]
    assert "greasy" in text.lower()
    assert srv.health()["streaming"]["early_decodes"] == 0
