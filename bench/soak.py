"""Soak: N HTTP + N Wyoming + N WebSocket clients for M minutes, then a flood at 4x the queue.

Starts the server on tiny.en (loopback only, free ports). Every answer is checked against the
clip's expected words. Then ``4 * --max-queue`` HTTP requests of 20 s audio are sent at once:
exactly the queue's capacity (workers + queue) must be accepted and every other one refused with
503. Prints requests, wrong, lost, 5xx, 503s, p50/p95 latency and the server's RSS/fds/threads
after warm-up and at the end; exits 1 if a check fails.

Run: ``python bench/soak.py [--clients 4] [--minutes 3] [--max-queue 16]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from bench.stats import percentile  # noqa: E402
from tests.harness import DATA_DIR, ServerProcess, words  # noqa: E402
from tests.http_helpers import (  # noqa: E402
    Resources,
    long_wav,
    metric,
    metrics,
    multipart,
    ws_transcribe,
)
from tests.wyoming_client import load_pcm16, transcribe  # noqa: E402

# Clips and every reading of them tiny.en gives (numbers come out as words or digits).
CLIPS = {
    "lhotse/LJ002-0020.wav": (["in", "eighteen", "thirteen"], ["in", "1813"]),
    "speech_recognition/english.wav": (["one", "two", "three"], ["1", "2", "3"]),
}


@dataclass
class Tally:
    requests: int = 0
    wrong: int = 0
    lost: int = 0  # no answer at all: connection dropped, timeout, unexpected close
    server_errors: int = 0  # 5xx, or an error event/message
    busy: int = 0  # 503 / server_busy
    latencies: list[float] = field(default_factory=list)
    by_door: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(what)


async def one_http(session: aiohttp.ClientSession, url: str, audio: bytes) -> tuple[int, str]:
    body, ctype = multipart({"model": "whisper-1"}, audio)
    async with session.post(
        url + "/v1/audio/transcriptions", data=body, headers={"Content-Type": ctype}
    ) as resp:
        data = await resp.json(content_type=None)
        return resp.status, data.get("text") if resp.status == 200 else json.dumps(data)


async def one_ws(session: aiohttp.ClientSession, url: str, pcm: bytes) -> tuple[int, str]:
    data = await ws_transcribe(session, url, pcm, chunk=16000)
    if data["type"] == "final":
        return 200, data["text"]
    busy = "retry" in data["message"]
    return (503 if busy else 500), data["message"]


async def one_wyoming(srv: ServerProcess, pcm: bytes) -> tuple[int, str]:
    event = await transcribe("127.0.0.1", srv.wyoming_port, pcm)
    if event.type == "transcript":
        return 200, event.data["text"]
    return (503 if event.data.get("code") == "server_busy" else 500), event.data.get("text", "")


async def client(
    door: str, srv: ServerProcess, session: aiohttp.ClientSession, until: float, tally: Tally
) -> None:
    clips = [(DATA_DIR / rel, readings) for rel, readings in CLIPS.items()]
    audio = {path: path.read_bytes() for path, _ in clips}
    pcm = {path: load_pcm16(path) for path, _ in clips}
    i = 0
    while time.monotonic() < until:
        path, readings = clips[i % len(clips)]
        i += 1
        started = time.monotonic()
        tally.requests += 1
        tally.by_door[door] += 1
        try:
            if door == "http":
                status, text = await one_http(session, srv.url, audio[path])
            elif door == "ws":
                status, text = await one_ws(session, srv.url, pcm[path])
            else:
                status, text = await asyncio.wait_for(one_wyoming(srv, pcm[path]), 120)
        except Exception as err:  # nothing came back
            tally.lost += 1
            tally.note(f"{door} lost: {err!r}")
            continue
        if status == 503:
            tally.busy += 1
            tally.note(f"{door} 503: {text}")
        elif status >= 500:
            tally.server_errors += 1
            tally.note(f"{door} {status}: {text}")
        elif status != 200 or words(text) not in readings:
            tally.wrong += 1
            tally.note(f"{door} wrong ({status}): {text!r}")
        else:
            tally.latencies.append(time.monotonic() - started)


async def flood(srv: ServerProcess, n: int, audio: bytes) -> Counter:
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(
            *(one_http(session, srv.url, audio) for _ in range(n)), return_exceptions=True
        )
    return Counter(r[0] if isinstance(r, tuple) else type(r).__name__ for r in results)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4, help="clients per front door")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--max-queue", type=int, default=16)
    parser.add_argument("--max-concurrency", type=int, default=None)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    flags = ["-m", "tiny.en", "--preload", "--no-zeroconf", "--max-queue", str(args.max_queue)]
    if args.max_concurrency:
        flags += ["--max-concurrency", str(args.max_concurrency)]
    srv = ServerProcess(flags, env={"TMPDIR": str(tmp)}).start(tmp)
    assert srv.proc is not None
    pid = srv.proc.pid
    try:
        async with aiohttp.ClientSession() as session:
            warm = Tally()
            until = time.monotonic() + 15
            doors = ["http", "wyoming", "ws"]
            await asyncio.gather(*(client(d, srv, session, until, warm) for d in doors * 2))
            start = Resources.of(pid, tmp)
            print(f"after warm-up ({warm.requests} requests): {start}")

            tally = Tally()
            until = time.monotonic() + args.minutes * 60
            await asyncio.gather(
                *(client(d, srv, session, until, tally) for d in doors * args.clients)
            )
        await asyncio.sleep(1)
        end = Resources.of(pid, tmp)

        samples = await asyncio.to_thread(metrics, srv.url)
        capacity = int(metric(samples, "whisper_queue_capacity", model="tiny.en"))
        n_flood = 4 * args.max_queue
        long_audio = long_wav(20, tmp / "flood.wav").read_bytes()
        flooded = await flood(srv, n_flood, long_audio)
        after_flood = Resources.of(pid, tmp)
    finally:
        code = srv.stop(60)

    lat = tally.latencies
    print(f"soak: {args.clients} clients x (HTTP, Wyoming, WebSocket), {args.minutes:g} min")
    print(f"requests: {tally.requests} {dict(tally.by_door)}")
    print(
        f"wrong: {tally.wrong}  lost: {tally.lost}  5xx: {tally.server_errors}  503: {tally.busy}"
    )
    print(f"latency p50: {percentile(lat, 0.5):.3f} s  p95: {percentile(lat, 0.95):.3f} s")
    print(f"flood: {n_flood} requests at once, capacity {capacity:.0f}: {dict(flooded)}")
    print(f"start: {start}")
    print(f"end:   {end}")
    print(f"after flood: {after_flood}")
    rss_growth = end.rss_mb - start.rss_mb
    print(f"RSS growth during soak: {rss_growth:+.1f} MB; server exit code {code}")
    for example in tally.examples:
        print("  example:", example)
    excess_503 = flooded.get(503, 0) == n_flood - capacity and flooded.get(200, 0) == capacity
    ok = (
        tally.wrong == tally.lost == tally.server_errors == tally.busy == 0
        and excess_503
        and abs(rss_growth) < 50
        and end.temp_files == 0
        and end.children == 0
        and code == 0
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
