"""Voice-command latency with early decoding, as Home Assistant streams it, versus the raw library.

Streams a real 2-3 s spoken command followed by 0.7 s of silence over Wyoming in real time (the
way Home Assistant sends the microphone, ending the stream after ~0.7 s of silence) and times
audio-stop -> transcript. Runs two servers on tiny.en (loopback, free ports): one with early
decoding (the default) and one with --no-early-decoding. In the same run it times faster-whisper's
``WhisperModel.transcribe`` on the command with the same settings (beam 5, VAD filter, int8 CPU).

Prints ``early-decoding ratio: X`` and ``early-decoding off ratio: Y`` (medians, ours / raw).
Run: ``python bench/latency_streaming.py [--runs 15] [--clip PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from wyoming.asr import Transcribe  # noqa: E402
from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402

from tests.conftest import AUDIO_DIR, ServerProcess  # noqa: E402
from tests.wyoming_client import load_pcm16  # noqa: E402

DEFAULT_CLIP = AUDIO_DIR / "speech_recognition" / "english.wav"
SILENCE_SECONDS = 0.7
CHUNK_SAMPLES = 480  # 30 ms per audio-chunk


async def stream_once(port: int, pcm: bytes) -> tuple[float, str, list[str]]:
    """Stream ``pcm`` paced to the wall clock, then time audio-stop -> transcript."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe().event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        step = CHUNK_SAMPLES * 2
        started = time.perf_counter()
        for i, offset in enumerate(range(0, len(pcm), step)):
            due = started + i * CHUNK_SAMPLES / 16000
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            chunk = AudioChunk(rate=16000, width=2, channels=1, audio=pcm[offset : offset + step])
            await client.write_event(chunk.event())
        # The last chunk covers real time too before the microphone stream ends.
        end = started + len(pcm) / 2 / 16000
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        await client.write_event(AudioStop().event())
        stopped = time.perf_counter()
        seen: list[str] = []
        while True:
            event = await client.read_event()
            assert event is not None, f"connection closed after {seen}"
            seen.append(event.type)
            if event.type in ("transcript", "error"):
                return time.perf_counter() - stopped, event.data.get("text", ""), seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--model", default="tiny.en")
    args = parser.parse_args()

    import numpy as np
    from faster_whisper import WhisperModel

    from wyoming_whisper.models.resolve import resolve

    command = load_pcm16(args.clip)
    pcm = command + b"\x00\x00" * int(SILENCE_SECONDS * 16000)
    samples = np.frombuffer(command, dtype="<i2").astype(np.float32) / 32768.0
    raw_model = WhisperModel(resolve(args.model), device="cpu", compute_type="int8")

    def raw_once() -> tuple[float, str]:
        started = time.perf_counter()
        segments, _ = raw_model.transcribe(samples, beam_size=5, vad_filter=True)
        text = "".join(s.text for s in segments).strip()
        return time.perf_counter() - started, text

    log_dir = REPO / "bench" / "out"
    log_dir.mkdir(parents=True, exist_ok=True)
    base = ["-m", args.model, "--preload", "--no-zeroconf", "--ttl", "0"]
    servers = {
        "on": ServerProcess(base),
        "off": ServerProcess([*base, "--no-early-decoding"]),
    }
    ours: dict[str, list[float]] = {"on": [], "off": []}
    texts: dict[str, str] = {}
    raw: list[float] = []
    try:
        for srv in servers.values():
            srv.start(log_dir)
        for srv in servers.values():  # warm-up: first-call allocations, VAD load
            asyncio.run(stream_once(srv.wyoming_port, pcm))
        raw_once()
        for _ in range(args.runs):
            for name, srv in servers.items():
                seconds, text, seen = asyncio.run(stream_once(srv.wyoming_port, pcm))
                ours[name].append(seconds)
                texts[name] = text
            seconds, texts["raw"] = raw_once()
            raw.append(seconds)
        health = servers["on"].health()
    finally:
        for srv in servers.values():
            srv.stop()

    raw_median = statistics.median(raw)
    print(f"clip: {args.clip.name} ({len(command) / 32000:.2f} s + {SILENCE_SECONDS} s silence)")
    print(f"model: {args.model}, runs: {args.runs}, events: {' '.join(seen)}")
    print(f"texts: on={texts['on']!r} off={texts['off']!r} raw={texts['raw']!r}")
    print(f"raw library transcribe: median {raw_median * 1000:.1f} ms")
    for name in ("on", "off"):
        med = statistics.median(ours[name])
        print(f"early decoding {name}: audio-stop -> transcript median {med * 1000:.1f} ms")
    print(f"early decodes used: {health['streaming']}")
    print(f"early-decoding ratio: {statistics.median(ours['on']) / raw_median:.3f}")
    print(f"early-decoding off ratio: {statistics.median(ours['off']) / raw_median:.3f}")


if __name__ == "__main__":
    main()
