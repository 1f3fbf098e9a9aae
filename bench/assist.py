"""Spoken commands through a real Home Assistant Assist pipeline (stt -> intent), the state of
the devices read back: how many commands each speech-to-text server gets carried out.

Starts, in a network namespace that has only loopback (``unshare -n``, as the Home Assistant
tests do; needs root and Python 3.13 for ``scripts/ha-env``), Home Assistant 2025.4.4 with the
entities, areas, floors and aliases of tests/data/assist (the ``bench_devices`` integration of
tests/home_assistant), and Wyoming STT servers, each added through the wyoming config flow with
an Assist pipeline of its own (that STT entity, ``conversation.home_assistant``, English):

- ``ours-tiny.en``, ``ours-base``: ``python -m wyoming_whisper`` with ``--hass-url`` and a
  long-lived token (it reads Assist's names), defaults otherwise (beam 5), each also with
  ``--assist-commands`` (``...+assist``) and ``--no-assist-commands`` (``...-assist``) when the
  server has them (``--no-assist-commands`` alone: on is the default; neither: only the
  default, and it says so); ``--ours-repo`` runs another checkout's wyoming_whisper;
- ``peer-tiny.en``, ``peer-base``: wyoming-faster-whisper 3.8.1 (its own venv, created under
  ``.venv-peer`` when missing) with ``--hass-token``/``--hass-api``, ``--model`` the directory our
  resolver gives for that model, beam 5, ``--cpu-threads`` as ours (one per two cores), its own
  compute type (the model's: float32 on a CPU; ours defaults to int8 there) unless
  ``--peer-compute-type`` says otherwise;
- ``text``: the manifest's words typed (start stage intent): what the agent does with perfect
  transcripts, the ceiling.

For every clip and server: the targets are put in the row's ``before`` state, the clip runs
through ``assist_pipeline/run`` (stt to intent; audio sent in a burst of 30 ms binary messages,
not paced, on the bench's timer device), then the targets are read back and the row's ``expect``
checked (free sentences: nothing may change). Prints per server: commands carried out, the name
right in the transcript, free speech kept (nothing changed) and its WER, the median seconds from
the end of the audio to intent-end (Home Assistant's work included: a command carried out takes
it longer than one refused) and to stt-end (the transcript alone), transcripts that say a command
twice; per intent, commands
carried out. Writes every row as JSON to bench/out/assist-*.json (printed; the rows so far also
go to ``.jsonl`` beside it as the bench runs).

Run: ``python bench/assist.py [--servers text,ours-tiny.en,peer-tiny.en] [--limit N]
[--kind command|free] [--peer-venv DIR] [--ours-repo DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.wer import edit_distance, normalize  # noqa: E402
from tests.data.assist.build import ENTITIES, TIMERS  # noqa: E402
from tests.data.assist.build import HERE as CLIPS  # noqa: E402
from tests.data.assist.build import load as load_manifest  # noqa: E402
from tests.harness import eventually  # noqa: E402

PEER = "wyoming-faster-whisper[hass]==3.8.1"
NAMESPACE = "ip link set lo up; ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo"
MODELS = ("tiny.en", "base")
ALL = ("text", "ours-tiny.en", "ours-base", "peer-tiny.en", "peer-base")
# Between two servers' requests: what a server still does after its answer (the command step's
# encode, started while the words were matched and not needed for a sure command; the idle memory
# trim) must not slow the next server's decode on the same cores.
SETTLE_SECONDS = 0.3


@dataclass
class Server:
    name: str
    kind: str  # text | ours | peer
    model: str = ""
    extra: tuple[str, ...] = ()
    wyoming: int = 0
    http: int = 0
    pipeline: str = ""
    proc: subprocess.Popen | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)


def name_heard(text: str, name: str) -> bool:
    return " ".join(normalize(name)) in " ".join(normalize(text or ""))


def said_twice(reference: str, transcript: str, name: str = "") -> bool:
    """The transcript holds the command's opening words (up to four), or the name spoken, twice
    where the command has them once ("Turn off the Drossmere fan, Drossmere fan")."""
    ref, hyp = normalize(reference), normalize(transcript or "")

    def count(words: list[str], part: list[str]) -> int:
        return sum(words[i : i + len(part)] == part for i in range(len(words) - len(part) + 1))

    parts = [ref[: min(4, len(ref))], normalize(name)]
    return any(part and count(hyp, part) >= 2 > count(ref, part) for part in parts)


def mark(row: dict[str, Any]) -> str:
    """`` X`` after a transcript whose command was not carried out or whose free speech changed
    something."""
    return " X" if row["missed"] or row["changed"] else ""


def spread(rows: list[dict[str, str]], limit: int | None) -> list[dict[str, str]]:
    """``limit`` rows spread evenly over the manifest (every intent and voice gets a turn)."""
    if not limit or limit >= len(rows):
        return rows
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)]


def summary(server: Server) -> dict[str, Any]:
    commands = [r for r in server.rows if r["kind"] == "command"]
    free = [r for r in server.rows if r["kind"] == "free"]
    named = [r for r in commands if r["name"]]
    done = sum(not r["missed"] for r in commands)
    heard = sum(name_heard(r["transcript"], r["name"]) for r in named)
    kept = sum(not r["changed"] for r in free)
    errors = sum(
        edit_distance(normalize(r["text"]), normalize(r["transcript"] or "")) for r in free
    )
    words = sum(len(normalize(r["text"])) for r in free)
    seconds = [r["seconds"] for r in server.rows if r["seconds"] is not None]
    stt = [r["stt_seconds"] for r in server.rows if r.get("stt_seconds") is not None]
    return {
        "commands": len(commands),
        "carried_out": done,
        "named": len(named),
        "name_heard": heard,
        "free": len(free),
        "free_kept": kept,
        "free_wer": errors / words if words else None,
        "median_seconds": statistics.median(seconds) if seconds else None,
        "median_stt_seconds": statistics.median(stt) if stt else None,
        "twice": [r["transcript"] for r in server.rows if r["twice"]],
    }


def pct(a: int, b: int) -> str:
    return f"{a}/{b} ({a / b:.0%})" if b else "-"


def report(servers: list[Server]) -> None:
    print()
    head = f"{'server':22} {'carried out':>15} {'name heard':>15} {'free kept':>13} "
    print(head + f"{'free WER':>9} {'median s':>9} {'stt s':>6} twice")
    for s in servers:
        m = summary(s)
        wer = f"{m['free_wer']:.1%}" if m["free_wer"] is not None else "-"
        med = f"{m['median_seconds']:.2f}" if m["median_seconds"] is not None else "-"
        stt = f"{m['median_stt_seconds']:.2f}" if m["median_stt_seconds"] is not None else "-"
        print(
            f"{s.name:22} {pct(m['carried_out'], m['commands']):>15} "
            f"{pct(m['name_heard'], m['named']):>15} {pct(m['free_kept'], m['free']):>13} "
            f"{wer:>9} {med:>9} {stt:>6} {len(m['twice'])}"
        )
    intents = sorted({r["intent"] for s in servers for r in s.rows if r["kind"] == "command"})
    if intents:
        print("\ncarried out per intent:")
        print(f"{'intent':28}" + "".join(f"{s.name[:16]:>17}" for s in servers))
        for intent in intents:
            cells = []
            for s in servers:
                rows = [r for r in s.rows if r["intent"] == intent]
                cells.append(pct(sum(not r["missed"] for r in rows), len(rows)))
            print(f"{intent:28}" + "".join(f"{c:>17}" for c in cells))
    for s in servers:
        for t in summary(s)["twice"]:
            print(f"  {s.name} said a command twice: {t!r}")


# -- outside the namespace: venvs, model directories, then the namespace ---------------------


def ensure_peer(venv: Path) -> Path:
    """wyoming-faster-whisper 3.8.1 in a venv of its own (pip from PyPI), made once."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PEER], check=True)
    return python


def assist_variants(ours: Path) -> list[tuple[str, list[str]]]:
    """(suffix, flags) of our server with the Assist-commands step on and off, as its --help
    offers them (``--assist-commands`` / ``--no-assist-commands``; on by default where only the
    ``--no-`` flag exists); just the default where it has neither."""
    help_text = subprocess.run(
        [sys.executable, "-m", "wyoming_whisper", "--help"],
        capture_output=True, text=True, cwd=ours, env={**os.environ, "PYTHONPATH": str(ours)},
    ).stdout  # fmt: skip
    if "--no-assist-commands" not in help_text:
        return [("", [])]
    on = ["--assist-commands"] if re.search(r"(?<![\w-])--assist-commands\b", help_text) else []
    return [("+assist", on), ("-assist", ["--no-assist-commands"])]


def outside(args: argparse.Namespace) -> int:
    from wyoming_whisper.backends.ctranslate2_models import resolve

    ha = os.environ.get("WHISPER_HA_VENV", str(REPO / ".venv-ha"))
    subprocess.run([str(REPO / "scripts" / "ha-env"), ha], check=True, stdout=subprocess.DEVNULL)
    wanted = args.servers.split(",")
    plan: dict[str, Any] = {"ha_venv": ha, "servers": []}
    ours = Path(args.ours_repo).resolve()
    variants = assist_variants(ours)
    if variants == [("", [])]:
        print(f"{ours}: wyoming_whisper has no --no-assist-commands flag: ours runs as it is")
    ports = iter(range(10600, 10700, 2))
    for name in wanted:
        kind, _, model = name.partition("-")
        if name not in ALL:
            raise SystemExit(f"unknown server {name!r} (known: {', '.join(ALL)})")
        if kind == "text":
            plan["servers"].append({"name": "text", "kind": "text"})
            continue
        path = resolve(model, download=False)
        if kind == "peer":
            python = ensure_peer(Path(args.peer_venv))
            port = next(ports)
            plan["servers"].append({"name": name, "kind": kind, "model": path, "wyoming": port,
                                    "python": str(python),
                                    "compute_type": args.peer_compute_type})  # fmt: skip
            continue
        for suffix, extra in variants:
            port = next(ports)
            plan["servers"].append({"name": name + suffix, "kind": kind, "model": model,
                                    "extra": extra, "wyoming": port, "http": port + 1,
                                    "repo": str(ours)})  # fmt: skip
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    result = out / f"assist-{time.strftime('%Y%m%d-%H%M%S')}.json"
    plan |= {"limit": args.limit, "kind": args.kind, "result": str(result)}
    plan_file = Path(tempfile.mkdtemp(prefix="assist-bench-")) / "plan.json"
    plan_file.write_text(json.dumps(plan))
    command = f"{NAMESPACE}; exec {sys.executable} {Path(__file__)} --inside {plan_file}"
    run = subprocess.run(["unshare", "-n", "bash", "-c", command])
    print(f"rows: {result}  (logs in {plan_file.parent})")
    return run.returncode


# -- inside the namespace ----------------------------------------------------------------------


def wait_port(port: int, timeout: float, proc: subprocess.Popen) -> None:
    def accepts() -> bool:
        if proc.poll() is not None:  # not retried: a dead process never listens
            raise RuntimeError(f"{proc.args} exited {proc.returncode}")
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    try:
        eventually(accepts, timeout, interval=0.3, what=f"port {port}")
    except OSError as err:  # refused to the end: say which port
        raise TimeoutError(f"port {port}") from err


def start(server: Server, spec: dict[str, Any], token: str, ha: str, logs: Path) -> None:
    log = open(logs / f"{server.name}.log", "w")  # noqa: SIM115 - closed with the process
    if server.kind == "ours":
        args = [sys.executable, "-m", "wyoming_whisper", "-m", server.model, "--host",
                "127.0.0.1", "--port", str(server.http), "--wyoming-port", str(server.wyoming),
                "--preload", "--no-zeroconf", "--hass-url", ha, "--hass-token", token,
                *server.extra]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": spec["repo"]}
    else:
        data = logs / f"{server.name}-data"
        data.mkdir(exist_ok=True)
        threads = str(max(1, (os.cpu_count() or 2) // 2))
        args = [spec["python"], "-m", "wyoming_faster_whisper", "--uri",
                f"tcp://127.0.0.1:{server.wyoming}", "--model", spec["model"], "--data-dir",
                str(data), "--language", "en", "--beam-size", "5", "--cpu-threads", threads,
                "--local-files-only", "--hass-token", token, "--hass-api", f"{ha}/api"]  # fmt: skip
        if spec.get("compute_type"):
            args += ["--compute-type", spec["compute_type"]]
        env = dict(os.environ)
    cwd = spec.get("repo", str(REPO))
    server.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)


async def bench(plan: dict[str, Any], servers: list[Server], logs: Path) -> None:
    import aiohttp

    from tests.home_assistant import assist as ha_assist
    from tests.home_assistant.scenario import Hass
    from tests.wyoming_client import load_pcm16

    specs = {s["name"]: s for s in plan["servers"]}
    rows = load_manifest()
    if plan["kind"]:
        rows = [r for r in rows if r["kind"] == plan["kind"]]
    rows = spread(rows, plan["limit"])
    everything = [*ENTITIES, TIMERS]
    async with aiohttp.ClientSession() as session:
        hass = Hass(session)
        await hass.onboard()
        device = await ha_assist.setup_names(hass)
        token = await ha_assist.token(hass)
        for s in servers:
            if s.kind != "text":
                start(s, specs[s.name], token, ha_assist.HA_URL, logs)
        for s in servers:
            if s.proc is not None:
                wait_port(s.wyoming, 300, s.proc)
                _, stt = await ha_assist.add_wyoming(hass, s.wyoming)
                s.pipeline = await hass.pipeline(s.name, stt)
        text_pipeline = await hass.pipeline("text", None)
        for s in servers:
            if s.kind == "text":
                s.pipeline = text_pipeline
        print(f"{len(rows)} clips, servers: {', '.join(s.name for s in servers)}", flush=True)
        started = time.monotonic()
        for i, row in enumerate(rows):
            pcm = load_pcm16(CLIPS / row["relpath"])
            targets = [t for t in row["target"].split(",") if t]
            for s in servers:
                await ha_assist.prepare(hass, row, text_pipeline, device)
                await asyncio.sleep(SETTLE_SECONDS)
                watched = everything if row["kind"] == "free" else targets
                before = await ha_assist.states(hass, watched)
                if s.kind == "text":
                    got = await ha_assist.run_intent(hass, s.pipeline, text=row["text"],
                                                     device_id=device)  # fmt: skip
                else:
                    got = await ha_assist.run_intent(hass, s.pipeline, pcm=pcm, device_id=device)
                after = await ha_assist.states(hass, watched)
                intent = got.get("intent", {})
                missed = ha_assist.check(row["expect"], after, intent) if targets else []
                changed = sorted(e for e in watched if before[e] != after[e])
                s.rows.append({
                    **{k: row[k] for k in ("relpath", "voice", "kind", "text", "intent", "name",
                                           "target", "expect")},
                    "server": s.name, "transcript": got.get("transcript"), "answer": intent,
                    "error": got.get("error"), "seconds": got.get("seconds"),
                    "stt_seconds": got.get("stt_seconds"),
                    "missed": missed, "changed": changed if row["kind"] == "free" else [],
                    "twice": said_twice(row["text"], got.get("transcript") or "", row["name"]),
                })  # fmt: skip
            with open(plan["result"] + "l", "a") as partial:  # .jsonl: the rows so far
                for s in servers:
                    partial.write(json.dumps(s.rows[-1]) + "\n")
            line = " | ".join(f"{s.rows[-1]['transcript']!r}{mark(s.rows[-1])}" for s in servers)
            print(
                f"[{i + 1}/{len(rows)} {time.monotonic() - started:.0f}s] {row['text']!r}: {line}",
                flush=True,
            )
        if hass.ws is not None:
            await hass.ws.close()


def inside(plan_file: Path) -> int:
    from tests.home_assistant import assist as ha_assist
    from tests.home_assistant.scenario import HA, wait_http

    plan = json.loads(plan_file.read_text())
    logs = plan_file.parent
    config = ha_assist.write_config(logs / "ha-config")
    servers = [Server(name=s["name"], kind=s["kind"], model=s.get("model", ""),
                      extra=tuple(s.get("extra", ())), wyoming=s.get("wyoming", 0),
                      http=s.get("http", 0)) for s in plan["servers"]]  # fmt: skip
    log = open(logs / "home-assistant.log", "w")  # noqa: SIM115
    hass = subprocess.Popen(
        [str(Path(plan["ha_venv"]) / "bin" / "hass"), "--skip-pip", "-c", str(config)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    failure = None
    try:
        wait_http(HA + "/manifest.json", 300, hass)
        asyncio.run(bench(plan, servers, logs))
    except Exception as err:  # the rows so far are still written and reported
        failure = f"{type(err).__name__}: {err}"
        print(f"bench failed: {failure}")
    finally:
        for p in [hass, *(s.proc for s in servers if s.proc)]:
            p.terminate()
        for p in [hass, *(s.proc for s in servers if s.proc)]:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    rows = [r for s in servers for r in s.rows]
    summaries = {s.name: summary(s) for s in servers}
    Path(plan["result"]).write_text(json.dumps({"summary": summaries, "rows": rows,
                                                "failure": failure}, indent=1))  # fmt: skip
    report(servers)
    return 1 if failure else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(ALL), help=f"comma list of {ALL}")
    parser.add_argument("--limit", type=int, default=None, help="clips, spread over the manifest")
    parser.add_argument("--kind", choices=("command", "free"), default=None)
    parser.add_argument("--peer-venv", default=str(REPO / ".venv-peer"))
    parser.add_argument(
        "--peer-compute-type", default="", help="the peer's --compute-type (default: its own)"
    )
    parser.add_argument(
        "--ours-repo", default=str(REPO), help="the checkout whose wyoming_whisper runs as ours"
    )
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        return inside(args.inside)
    return outside(args)


if __name__ == "__main__":
    sys.exit(main())
