"""Replicas behind a real load balancer on loopback, through a rolling restart of one of them.

Starts ``--replicas`` servers (tiny.en, loopback, free ports, one worker each, ``--shutdown-delay``)
behind HAProxy from Debian's package (``apt-get install haproxy`` when it is missing). HAProxy
checks each replica's ``GET /ready`` every 0.5 s: HTTP is balanced in ``mode http``, Wyoming in
``mode tcp`` (one connection per utterance) with the same HTTP check on the replica's HTTP port.
For ``--seconds``, ``--http-clients`` upload a recording (aiohttp, multipart, the OpenAI route)
and ``--wyoming-clients`` send it as an utterance (the wyoming library's AsyncTcpClient), back to
back, all through HAProxy. A third of the way in, replica 0 is restarted: SIGTERM (its /ready
turns 503 at once, it keeps serving for the shutdown delay, finishes what is in flight, exits),
then started again on the same ports (/ready 503 while its model loads, then 200).

Prints throughput, p50/p95 latency, the errors clients saw (wrong transcripts included; the goal
is 0), requests per replica and HAProxy's retries and redispatches (0 means no request needed
the balancer to hide a refused connection), and when replica 0 went down and came back.

Run: ``python bench/replicas.py [--replicas 2] [--seconds 30] [--http-clients 2]
[--wyoming-clients 2]`` (as root where HAProxy must be installed).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402

from bench.stats import percentile  # noqa: E402
from tests.harness import DATA_DIR, ServerProcess, eventually, free_port, words  # noqa: E402
from tests.http_helpers import multipart  # noqa: E402
from tests.wyoming_client import load_pcm16, read_until, send_audio  # noqa: E402

CLIP = DATA_DIR / "speech_recognition" / "english.wav"  # 2.7 s: "one two three"
EXPECTED = ["one", "two", "three"]
CHECK_MS = 500  # HAProxy's check interval; one failed check takes a replica out
SERVER_ARGS = ["-m", "tiny.en", "--no-zeroconf", "--max-concurrency", "1"]


def haproxy_binary() -> str:
    """HAProxy from Debian's package, installed here when it is missing."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if found:
        return found
    print("installing haproxy (apt-get install -y haproxy) ...", flush=True)
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "haproxy"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(install, check=True, capture_output=True)
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if not found:
        raise SystemExit("haproxy is not installed and apt-get could not install it")
    return found


def haproxy_config(replicas: list[ServerProcess], http: int, wyoming: int, stats: int) -> str:
    """Both front doors on loopback; every replica checked on GET /ready of its HTTP port."""
    check = f"check inter {CHECK_MS} fall 1 rise 2"
    http_servers = "\n".join(
        f"    server r{i} 127.0.0.1:{r.port} {check}" for i, r in enumerate(replicas)
    )
    wyoming_servers = "\n".join(
        f"    server r{i} 127.0.0.1:{r.wyoming_port} {check} port {r.port}"
        for i, r in enumerate(replicas)
    )
    ready_check = (
        "    option httpchk\n"
        "    http-check send meth GET uri /ready\n"
        "    http-check expect status 200\n"
    )
    return f"""global
    maxconn 512

defaults
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout check 2s
    retries 2
    option redispatch

frontend http_in
    mode http
    bind 127.0.0.1:{http}
    default_backend http_replicas

backend http_replicas
    mode http
    balance leastconn
{ready_check}{http_servers}

frontend wyoming_in
    mode tcp
    bind 127.0.0.1:{wyoming}
    default_backend wyoming_replicas

backend wyoming_replicas
    mode tcp
    balance leastconn
{ready_check}{wyoming_servers}

listen stats
    mode http
    bind 127.0.0.1:{stats}
    stats enable
    stats uri /stats
"""


def haproxy_stats(port: int) -> dict[tuple[str, str], dict[str, str]]:
    """HAProxy's CSV statistics, keyed by (backend, server)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats;csv", timeout=5) as resp:
        text = resp.read().decode().lstrip("# ")
    return {(r["pxname"], r["svname"]): r for r in csv.DictReader(io.StringIO(text))}


@dataclass
class Tally:
    """What the clients saw."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"http": [], "wyoming": []})
    errors: list[str] = field(default_factory=list)

    def ok(self, door: str, seconds: float) -> None:
        self.latencies[door].append(seconds)

    def error(self, door: str, at: float, what: str) -> None:
        self.errors.append(f"{at:6.2f} s {door}: {what}")


async def http_client(url: str, audio: bytes, until: float, t0: float, tally: Tally) -> None:
    body, ctype = multipart({"model": "whisper-1"}, audio)
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < until:
            started = time.monotonic()
            try:
                async with session.post(
                    url + "/v1/audio/transcriptions", data=body, headers={"Content-Type": ctype}
                ) as resp:
                    text = await resp.text()
                    if resp.status != 200:
                        tally.error("http", started - t0, f"{resp.status} {text[:200]}")
                        continue
                    reply = await resp.json()
            except Exception as err:  # a client error, whatever its kind
                tally.error("http", started - t0, f"{type(err).__name__}: {err}")
                continue
            if words(reply["text"]) != EXPECTED:
                tally.error("http", started - t0, f"transcript {reply['text']!r}")
                continue
            tally.ok("http", time.monotonic() - started)


async def wyoming_client(port: int, pcm: bytes, until: float, t0: float, tally: Tally) -> None:
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            async with AsyncTcpClient("127.0.0.1", port) as client:
                await send_audio(client, pcm)
                event = (await read_until(client, "transcript", timeout=60))[-1]
        except Exception as err:
            tally.error("wyoming", started - t0, f"{type(err).__name__}: {err}")
            continue
        if event.type != "transcript":
            tally.error("wyoming", started - t0, f"{event.type} {event.data}")
        elif words(str(event.data["text"])) != EXPECTED:
            tally.error("wyoming", started - t0, f"transcript {event.data['text']!r}")
        else:
            tally.ok("wyoming", time.monotonic() - started)


async def watch(stats_port: int, until: float, t0: float, timeline: list[str]) -> None:
    """Note each change of a replica's check status (HAProxy's view of /ready)."""
    last: dict[tuple[str, str], str] = {}
    while time.monotonic() < until:
        rows = await asyncio.to_thread(haproxy_stats, stats_port)
        for key, row in rows.items():
            if key[1] in ("FRONTEND", "BACKEND"):
                continue
            if last.get(key) not in (None, row["status"]):
                timeline.append(f"{time.monotonic() - t0:6.2f} s {key[0]}/{key[1]} {row['status']}")
            last[key] = row["status"]
        await asyncio.sleep(0.1)


async def restart(
    replicas: list[ServerProcess], args: list[str], log_dir: Path, t0: float, timeline: list[str]
) -> None:
    """SIGTERM replica 0, wait for it to exit, start it again on the same ports."""
    old = replicas[0]
    assert old.proc is not None
    timeline.append(f"{time.monotonic() - t0:6.2f} s replica 0: SIGTERM")
    code = await asyncio.to_thread(old.stop, 60)
    timeline.append(f"{time.monotonic() - t0:6.2f} s replica 0: exited {code}")
    new = ServerProcess(args, port=old.port, wyoming_port=old.wyoming_port)
    (log_dir / "restarted").mkdir(exist_ok=True)
    new.start(log_dir / "restarted", wait=False)
    replicas[0] = new
    timeline.append(f"{time.monotonic() - t0:6.2f} s replica 0: started again")


def wait_all_up(stats_port: int, n: int, timeout: float = 180) -> None:
    def all_up() -> bool:
        rows = haproxy_stats(stats_port)  # OSError while HAProxy is still starting: retried
        up = [k for k, r in rows.items() if k[1].startswith("r") and r["status"] == "UP"]
        return len(up) == 2 * n

    try:
        eventually(all_up, timeout, interval=0.2, what="replicas ready behind HAProxy")
    except OSError as err:
        raise TimeoutError("replicas not ready behind HAProxy") from err


async def run(args: argparse.Namespace) -> int:
    server_args = [*SERVER_ARGS, "--shutdown-delay", str(args.shutdown_delay)]
    haproxy = haproxy_binary()
    audio = CLIP.read_bytes()
    pcm = load_pcm16(CLIP)
    with tempfile.TemporaryDirectory(prefix="replicas-") as tmp:
        log_dir = Path(tmp)
        replicas = [ServerProcess(list(server_args)) for _ in range(args.replicas)]
        http_port, wyoming_port, stats_port = free_port(), free_port(), free_port()
        config = log_dir / "haproxy.cfg"
        config.write_text(haproxy_config(replicas, http_port, wyoming_port, stats_port))
        check = subprocess.run([haproxy, "-c", "-q", "-f", str(config)], capture_output=True)
        if check.returncode != 0:
            raise SystemExit(f"haproxy refused its configuration: {check.stderr.decode()}")
        balancer = subprocess.Popen([haproxy, "-db", "-f", str(config)], stderr=subprocess.PIPE)
        try:
            for replica in replicas:
                replica.start(log_dir, wait=False)
            await asyncio.to_thread(wait_all_up, stats_port, args.replicas)
            before = haproxy_stats(stats_port)
            tally, timeline = Tally(), []
            t0 = time.monotonic()
            until = t0 + args.seconds
            url = f"http://127.0.0.1:{http_port}"
            clients = [http_client(url, audio, until, t0, tally) for _ in range(args.http_clients)]
            clients += [
                wyoming_client(wyoming_port, pcm, until, t0, tally)
                for _ in range(args.wyoming_clients)
            ]

            async def restart_later() -> None:
                await asyncio.sleep(args.seconds / 3)
                await restart(replicas, server_args, log_dir, t0, timeline)

            await asyncio.gather(watch(stats_port, until, t0, timeline), restart_later(), *clients)
            elapsed = time.monotonic() - t0
            after = haproxy_stats(stats_port)
        finally:
            for replica in replicas:
                replica.stop()
            balancer.terminate()
            balancer.wait(10)
    report(args, tally, timeline, before, after, elapsed)
    return 1 if tally.errors else 0


def report(
    args: argparse.Namespace,
    tally: Tally,
    timeline: list[str],
    before: dict[tuple[str, str], dict[str, str]],
    after: dict[tuple[str, str], dict[str, str]],
    elapsed: float,
) -> None:
    every = [s for door in tally.latencies.values() for s in door]
    print(
        f"{args.replicas} replicas (tiny.en, 1 worker each) behind HAProxy, {elapsed:.1f} s, "
        f"{args.http_clients} HTTP + {args.wyoming_clients} Wyoming clients, "
        "replica 0 restarted once"
    )
    print(f"throughput: {len(every) / elapsed:.2f} requests/s ({len(every)} answered correctly)")
    for door, seconds in [("all", every), *tally.latencies.items()]:
        print(
            f"latency {door:8s} p50 {percentile(seconds, 0.5) * 1000:6.0f} ms   "
            f"p95 {percentile(seconds, 0.95) * 1000:6.0f} ms   (n={len(seconds)})"
        )
    print(f"client errors: {len(tally.errors)}")
    for line in tally.errors[:20]:
        print("  " + line)

    def delta(key: tuple[str, str], name: str) -> int:
        return int(after[key][name] or 0) - int(before[key][name] or 0)

    for backend in ("http_replicas", "wyoming_replicas"):
        servers = [sv for px, sv in sorted(after) if px == backend and sv.startswith("r")]
        split = {sv: delta((backend, sv), "stot") for sv in servers}
        retries = delta((backend, "BACKEND"), "wretr")
        redispatches = delta((backend, "BACKEND"), "wredis")
        print(
            f"requests per replica ({backend}): "
            + ", ".join(f"{sv} {n}" for sv, n in split.items())
            + f"; haproxy retries {retries}, redispatches {redispatches}"
        )
    print("timeline:")
    for line in timeline:
        print("  " + line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2, choices=range(2, 9))
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--http-clients", type=int, default=2, choices=range(0, 17))
    parser.add_argument("--wyoming-clients", type=int, default=2, choices=range(0, 17))
    parser.add_argument(
        "--shutdown-delay",
        type=float,
        default=2.0,
        help="the replicas' --shutdown-delay: at least HAProxy's check interval (0.5 s)",
    )
    args = parser.parse_args()
    if not 5 <= args.seconds <= 600:
        parser.error("--seconds must be between 5 and 600")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
