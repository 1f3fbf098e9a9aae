"""Resident memory of a tiny.en server: at start, loaded, and its peak while serving clients.

Starts the server (loopback, free ports, ``--preload``, the default settings otherwise), reads its
RSS (psutil, every 10 ms from a thread) while ``--clients`` Wyoming clients each send
``--requests`` spoken commands back to back, and prints the idle, loaded and peak figures, the
peak with ``--encoder-window full`` for comparison, and the raw faster-whisper library's own
peak in a bare process decoding the same audio the same number of times.

Run: ``python bench/memory.py [--model tiny.en] [--clients 4] [--requests 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from tests.harness import DATA_DIR, ServerProcess  # noqa: E402
from tests.wyoming_client import load_pcm16, transcribe  # noqa: E402

CLIP = DATA_DIR / "speech_recognition" / "english.wav"
GOAL_MB = 200.0

RAW = """
import sys, threading, time
import psutil
from faster_whisper import WhisperModel, decode_audio
from wyoming_whisper.backends.ctranslate2_models import resolve
proc = psutil.Process()
peak = [proc.memory_info().rss]
def watch():
    while True:
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.01)
threading.Thread(target=watch, daemon=True).start()
model = WhisperModel(resolve(sys.argv[1]), device="cpu", compute_type="int8")
audio = decode_audio(sys.argv[2])
for _ in range(int(sys.argv[3])):
    list(model.transcribe(audio, beam_size=5, vad_filter=True)[0])
time.sleep(0.05)
print(peak[0])
"""


class Peak:
    """The highest RSS of one process, sampled every 10 ms until stopped."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.value = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.value = max(self.value, self.process.memory_info().rss)
            time.sleep(0.01)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.value / 1e6


async def load(port: int, pcm: bytes, clients: int, requests: int) -> None:
    async def client() -> None:
        for _ in range(requests):
            event = await transcribe("127.0.0.1", port, pcm)
            assert event.type == "transcript", event

    await asyncio.gather(*(client() for _ in range(clients)))


def serve(model: str, window: str, pcm: bytes, clients: int, requests: int) -> dict[str, float]:
    server = ServerProcess(["-m", model, "--preload", "--no-zeroconf", "--encoder-window", window])
    server.start(Path(tempfile.mkdtemp(prefix="memory-bench-")))
    try:
        assert server.proc is not None
        process = psutil.Process(server.proc.pid)
        loaded = process.memory_info().rss / 1e6
        peak = Peak(server.proc.pid)
        asyncio.run(load(server.wyoming_port, pcm, clients, requests))
        time.sleep(0.5)  # the idle trim after the last request
        return {"loaded": loaded, "peak": peak.stop(), "after": process.memory_info().rss / 1e6}
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=10)
    args = parser.parse_args()
    pcm = load_pcm16(CLIP)

    figures = {w: serve(args.model, w, pcm, args.clients, args.requests) for w in ("auto", "full")}
    raw = subprocess.run(
        [sys.executable, "-c", RAW, args.model, str(CLIP), str(args.requests)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    raw_peak = int(raw.stdout.split()[-1]) / 1e6
    print(
        f"model {args.model}, {args.clients} Wyoming clients x {args.requests} requests of "
        f"{CLIP.name}"
    )
    for window, f in figures.items():
        print(
            f"server, encoder window {window}: loaded {f['loaded']:.1f} MB, "
            f"peak {f['peak']:.1f} MB, after {f['after']:.1f} MB"
        )
    print(f"raw faster-whisper, one process, {args.requests} decodes: peak {raw_peak:.1f} MB")
    peak = figures["auto"]["peak"]
    print(f"peak RSS: {peak:.1f} MB (goal {GOAL_MB:.0f} MB); peak / raw: {peak / raw_peak:.3f}")
    return 0 if peak <= GOAL_MB else 1


if __name__ == "__main__":
    sys.exit(main())
