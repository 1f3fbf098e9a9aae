"""Voice-command latency over Wyoming versus the raw faster-whisper library, in the same run.

For each model (tiny.en, base and small by default), servers started here (loopback, free ports);
each case is repeated ``--runs`` times, interleaved with the raw library timed on the same audio
with the same settings (``WhisperModel.transcribe`` with its own 30 s window, beam 5, VAD filter on,
int8 on CPU):

1. burst: a real 2-3 s spoken command sent at once; audio-stop -> transcript. Prints
   ``ratio: <ours/raw>`` (medians) with the fitted encoder window (``--encoder-window auto``, the
   default) and ``full-window ratio`` with ``--encoder-window full``.
2. streamed: the command plus 0.7 s of silence, paced in real time as Home Assistant sends the
   microphone; audio-stop -> transcript, with early decoding (the default) and with
   ``--no-early-decoding``. Prints ``early-decoding ratio: X`` and ``early-decoding off ratio: Y``.

Run: ``python bench/latency.py [--runs 15] [--clip PATH] [--model tiny.en ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from wyoming.asr import Transcribe  # noqa: E402
from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402

from bench.stats import percentile  # noqa: E402
from tests.harness import DATA_DIR, ServerProcess  # noqa: E402
from tests.wyoming_client import load_pcm16  # noqa: E402

DEFAULT_CLIP = DATA_DIR / "speech_recognition" / "english.wav"
# small costs on this CPU about what tiny costs on a Raspberry Pi 4: the proxy for small hardware.
MODELS = ("tiny.en", "base", "small")
SILENCE_SECONDS = 0.7  # Home Assistant ends the stream after about this much silence
CHUNK_SAMPLES = 480  # 30 ms per streamed audio-chunk
BURST_CHUNK_BYTES = 4096


async def wyoming_once(port: int, pcm: bytes, *, realtime: bool) -> tuple[float, str]:
    """Send the audio (at once, or paced to the wall clock), then time audio-stop -> transcript."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe().event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        step = CHUNK_SAMPLES * 2 if realtime else BURST_CHUNK_BYTES
        started = time.perf_counter()
        for i, offset in enumerate(range(0, len(pcm), step)):
            if realtime:
                due = started + i * CHUNK_SAMPLES / 16000
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            chunk = AudioChunk(rate=16000, width=2, channels=1, audio=pcm[offset : offset + step])
            await client.write_event(chunk.event())
        if realtime:  # the last chunk lasts its own duration before the microphone stops
            await asyncio.sleep(max(0.0, started + len(pcm) / 32000 - time.perf_counter()))
        await client.write_event(AudioStop().event())
        stopped = time.perf_counter()
        while True:
            event = await client.read_event()
            assert event is not None, "connection closed"
            if event.type in ("transcript", "error"):
                return time.perf_counter() - stopped, event.data.get("text", "")


def summary(label: str, values: list[float]) -> str:
    return (
        f"{label}: median {statistics.median(values) * 1000:.1f} ms, "
        f"p90 {percentile(values, 0.9) * 1000:.1f} ms"
    )


def bench_model(model: str, clip: Path, runs: int) -> dict[str, float]:
    """One model's cases, interleaved with the raw library; prints them, returns the ratios."""
    import numpy as np
    from faster_whisper import WhisperModel

    from wyoming_whisper.backends.ctranslate2_models import resolve

    command = load_pcm16(clip)
    streamed = command + b"\x00\x00" * int(SILENCE_SECONDS * 16000)
    samples = np.frombuffer(command, dtype="<i2").astype(np.float32) / 32768.0
    raw_model = WhisperModel(resolve(model), device="cpu", compute_type="int8")

    def raw_once() -> tuple[float, str]:
        started = time.perf_counter()
        segments, _ = raw_model.transcribe(samples, beam_size=5, vad_filter=True)
        text = "".join(s.text for s in segments).strip()
        return time.perf_counter() - started, text

    log_dir = REPO / "bench" / "out"
    log_dir.mkdir(parents=True, exist_ok=True)
    common = ["-m", model, "--preload", "--no-zeroconf", "--ttl", "0"]
    on = ServerProcess(common)
    off = ServerProcess([*common, "--no-early-decoding"])
    full = ServerProcess([*common, "--encoder-window", "full"])
    cases: dict[str, Callable[[], tuple[float, str]]] = {
        "burst": lambda: asyncio.run(wyoming_once(on.wyoming_port, command, realtime=False)),
        "burst, full window": lambda: asyncio.run(
            wyoming_once(full.wyoming_port, command, realtime=False)
        ),
        "streamed, early decoding": lambda: asyncio.run(
            wyoming_once(on.wyoming_port, streamed, realtime=True)
        ),
        "streamed, no early decoding": lambda: asyncio.run(
            wyoming_once(off.wyoming_port, streamed, realtime=True)
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in (*cases, "raw")}
    texts: dict[str, str] = {}
    servers = (on, off, full)
    try:
        for server in servers:
            server.start(log_dir)
        for run in (*cases.values(), raw_once):  # warm-up: first-call allocations
            run()
        for _ in range(runs):
            for name, run in (*cases.items(), ("raw", raw_once)):
                seconds, texts[name] = run()
                times[name].append(seconds)
        health = on.health()
    finally:
        for server in servers:
            server.stop()

    raw = statistics.median(times["raw"])
    print(f"== {model}: clip {clip.name} ({len(samples) / 16000:.2f} s), {runs} runs, int8 on CPU")
    for name, text in texts.items():
        print(f"transcript ({name}): {text!r}")
    print(summary("raw library transcribe", times["raw"]))
    for name in cases:
        print(summary(f"ours audio-stop->transcript ({name})", times[name]))
    print(f"streaming: {health.get('streaming')}; encoder window: {health.get('encoder_window')}")
    ratios = {
        "ratio": statistics.median(times["burst"]) / raw,
        "full-window ratio": statistics.median(times["burst, full window"]) / raw,
        "early-decoding ratio": statistics.median(times["streamed, early decoding"]) / raw,
        "early-decoding off ratio": statistics.median(times["streamed, no early decoding"]) / raw,
    }
    for name, value in ratios.items():
        print(f"{name}: {value:.3f}")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument(
        "--model", action="append", help="repeat for several (default: tiny.en, base, small)"
    )
    args = parser.parse_args()
    from wyoming_whisper.backends.ctranslate2_models import ModelResolutionError, resolve

    results: dict[str, dict[str, float] | str] = {}
    for model in args.model or MODELS:
        try:
            resolve(model, download=False)
        except ModelResolutionError as err:  # e.g. the small pack on PyPI is incomplete
            results[model] = f"not available here: {err}"
            print(f"== {model}: {results[model]}")
            continue
        results[model] = bench_model(model, args.clip, args.runs)
    print("== summary (ours / raw faster-whisper, medians)")
    for model, ratios in results.items():
        if isinstance(ratios, str):
            print(f"{model}: {ratios}")
        else:
            print(f"{model}: " + ", ".join(f"{name} {value:.3f}" for name, value in ratios.items()))


if __name__ == "__main__":
    main()
