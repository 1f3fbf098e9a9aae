"""A small helper around the ``wyoming`` library's own client, used by the tests and benches."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event


def read_wav(path: Path) -> tuple[bytes, int, int, int]:
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes()), w.getframerate(), w.getsampwidth(), w.getnchannels()


def load_pcm16(path: Path, rate: int = 16000, channels: int = 1) -> bytes:
    """Decode any audio file to 16-bit PCM at ``rate`` with ``channels`` (via PyAV)."""
    from faster_whisper.audio import decode_audio

    mono = decode_audio(str(path), sampling_rate=rate)
    pcm = (np.clip(mono, -1, 1) * 32767).astype("<i2")
    if channels > 1:
        pcm = np.repeat(pcm[:, None], channels, axis=1).reshape(-1)
    return pcm.tobytes()


async def send_audio(
    client: AsyncTcpClient,
    pcm: bytes,
    rate: int = 16000,
    width: int = 2,
    channels: int = 1,
    *,
    transcribe: Transcribe | None = None,
    chunk_bytes: int = 4096,
) -> None:
    await client.write_event((transcribe or Transcribe()).event())
    await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
    for i in range(0, len(pcm), chunk_bytes):
        chunk = AudioChunk(
            rate=rate, width=width, channels=channels, audio=pcm[i : i + chunk_bytes]
        )
        await client.write_event(chunk.event())
    await client.write_event(AudioStop().event())


async def read_until(client: AsyncTcpClient, *types: str, timeout: float = 120.0) -> list[Event]:
    """Read events until one of ``types`` arrives (or an error); return all of them."""
    import asyncio

    seen: list[Event] = []
    while True:
        event = await asyncio.wait_for(client.read_event(), timeout)
        assert event is not None, f"connection closed; saw {[e.type for e in seen]}"
        seen.append(event)
        if event.type in types or event.type == "error":
            return seen


async def transcribe(
    host: str,
    port: int,
    pcm: bytes,
    rate: int = 16000,
    width: int = 2,
    channels: int = 1,
    **kwargs: object,
) -> Event:
    async with AsyncTcpClient(host, port) as client:
        await send_audio(client, pcm, rate, width, channels, **kwargs)  # type: ignore[arg-type]
        return (await read_until(client, "transcript"))[-1]


async def stream_paced(
    client: AsyncTcpClient,
    pcm: bytes,
    *,
    chunk_samples: int = 1024,
    transcribe: Transcribe | None = None,
) -> tuple[list[tuple[float, Event]], float]:
    """Send 16 kHz mono PCM in real time (as a microphone does) while reading the answer.

    Returns every event with its arrival time, and the time audio-stop was sent (seconds since
    the first chunk).
    """
    import asyncio
    import time

    events: list[tuple[float, Event]] = []
    started = time.perf_counter()

    async def read() -> None:
        while True:
            event = await asyncio.wait_for(client.read_event(), 120)
            assert event is not None, f"connection closed; saw {[e.type for _, e in events]}"
            events.append((time.perf_counter() - started, event))
            if event.type in ("transcript-stop", "error"):
                return

    reader = asyncio.create_task(read())
    await client.write_event((transcribe or Transcribe()).event())
    await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
    step = chunk_samples * 2
    for i, offset in enumerate(range(0, len(pcm), step)):
        await asyncio.sleep(max(0.0, started + i * chunk_samples / 16000 - time.perf_counter()))
        chunk = AudioChunk(rate=16000, width=2, channels=1, audio=pcm[offset : offset + step])
        await client.write_event(chunk.event())
    stopped = time.perf_counter() - started
    await client.write_event(AudioStop().event())
    await reader
    return events, stopped
