"""Voice-command latency over Wyoming versus the raw faster-whisper library, in the same run.

Starts the server on tiny.en (loopback, free ports), sends a real 2-3 s spoken command N times and
measures audio-stop -> transcript. Between those, times ``WhisperModel.transcribe`` on the same
audio with the same settings (beam 5, VAD filter on, int8 on CPU). Prints the figures and
``ratio: <ours/raw>`` (medians). Run: ``python bench/latency.py [--runs 15] [--clip PATH]``.
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

from wyoming.client import AsyncTcpClient  # noqa: E402

from tests.conftest import AUDIO_DIR, ServerProcess  # noqa: E402
from tests.wyoming_client import load_pcm16, send_audio  # noqa: E402

DEFAULT_CLIP = AUDIO_DIR / "speech_recognition" / "english.wav"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def ours_once(port: int, pcm: bytes) -> tuple[float, str]:
    """Send the command, then time from audio-stop to the transcript."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await send_audio(client, pcm)  # ends with audio-stop
        stopped = time.perf_counter()
        while True:
            event = await client.read_event()
            assert event is not None
            if event.type in ("transcript", "error"):
                return time.perf_counter() - stopped, event.data.get("text", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--model", default="tiny.en")
    args = parser.parse_args()

    import numpy as np
    from faster_whisper import WhisperModel

    from wyoming_whisper.models.resolve import resolve

    pcm = load_pcm16(args.clip)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    raw_model = WhisperModel(resolve(args.model), device="cpu", compute_type="int8")

    def raw_once() -> tuple[float, str]:
        started = time.perf_counter()
        segments, _ = raw_model.transcribe(samples, beam_size=5, vad_filter=True)
        text = "".join(s.text for s in segments).strip()
        return time.perf_counter() - started, text

    log_dir = REPO / "bench" / "out"
    log_dir.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(["-m", args.model, "--preload", "--no-zeroconf", "--ttl", "0"])
    server.start(log_dir)
    ours: list[float] = []
    raw: list[float] = []
    try:
        # Warm both up once (first-call allocations), then interleave the measured runs.
        asyncio.run(ours_once(server.wyoming_port, pcm))
        raw_once()
        for _ in range(args.runs):
            seconds, ours_text = asyncio.run(ours_once(server.wyoming_port, pcm))
            ours.append(seconds)
            seconds, raw_text = raw_once()
            raw.append(seconds)
    finally:
        server.stop()

    print(
        f"clip: {args.clip.name} ({len(samples) / 16000:.2f} s), model {args.model}, "
        f"{args.runs} runs"
    )
    print(f"transcript (ours): {ours_text!r}")
    print(f"transcript (raw):  {raw_text!r}")
    for label, values in (("ours audio-stop->transcript", ours), ("raw transcribe", raw)):
        print(
            f"{label}: median {statistics.median(values) * 1000:.1f} ms, "
            f"p90 {percentile(values, 0.9) * 1000:.1f} ms"
        )
    print(f"ratio: {statistics.median(ours) / statistics.median(raw):.3f}")


if __name__ == "__main__":
    main()
