"""The test harness, a library for the suite and the benches: the real server as a subprocess on
free loopback ports, the committed recordings, and one way to wait for something.

conftest.py holds only pytest's fixtures and hooks (a conftest is pytest's to import, not a
module to share); everything a test or a bench imports lives here.

Waiting: a test that needs the server to reach a state polls for it with ``eventually`` (never a
hand-written deadline loop), so every wait has a timeout, names what it waited for and keeps the
last error. A test that must show something did NOT happen looks for evidence that comes after
it (a later answer, log line or metric); only where none exists does it use ``never``, which
says so.
"""

from __future__ import annotations

import asyncio
import csv
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
# The recordings every test uses, committed with their sources and licences (tests/data/build.py).
DATA_DIR = REPO / "tests" / "data"
# The larger shared set (benches): optional, absent from a clone of the public repository.
AUDIO_DIR = Path(os.environ.get("WHISPER_TEST_AUDIO", REPO.parent / "shared" / "audio"))

# Errors a check may raise while the thing it looks at is not there yet (a port not open, an
# answer not right yet): retried until the timeout, then re-raised.
RETRIED = (AssertionError, OSError)


# --- Waiting ---------------------------------------------------------------------------------


def _timed_out(
    what: str, timeout: float, last_error: BaseException | None, value: object
) -> NoReturn:
    """Raise what a wait that ran out of time raises: the check's last error (with a note of
    what was awaited) or a TimeoutError naming it and the check's last value."""
    label = what or "condition"
    if last_error is not None:
        last_error.add_note(f"eventually: {label} not reached within {timeout} s")
        raise last_error
    raise TimeoutError(f"{label} not reached within {timeout} s (last value: {value!r})")


def eventually(
    check: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """Call ``check`` every ``interval`` seconds until it returns something truthy; return that.

    Why: the server works in its own process and threads, so a test waits for a state instead of
    sleeping a guessed time. ``check`` may raise AssertionError or OSError while the state is not
    reached (retried); any other error ends the wait at once (a server that exited, say;
    ``pytest.fail`` for a state that can no longer come). On
    timeout the last error is re-raised, or a TimeoutError names ``what``. ``check`` is called at
    least once, and once more after the deadline, so a slow machine only costs time.
    """
    deadline = time.monotonic() + timeout
    while True:
        last_error: BaseException | None = None
        value: T | None = None
        try:
            value = check()
        except RETRIED as err:
            last_error = err
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            _timed_out(what, timeout, last_error, value)
        time.sleep(interval)


async def eventually_async(
    check: Callable[[], T | Awaitable[T | None] | None],
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """``eventually`` for a test on an event loop: sleeps with ``asyncio.sleep`` so the loop keeps
    running the test's own clients, and awaits ``check``'s result where it is awaitable."""
    deadline = time.monotonic() + timeout
    while True:
        last_error: BaseException | None = None
        value: Any = None
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except RETRIED as err:
            last_error = err
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            _timed_out(what, timeout, last_error, value)
        await asyncio.sleep(interval)


def never(
    check: Callable[[], object], for_seconds: float, interval: float = 0.05, what: str = ""
) -> None:
    """Fail as soon as ``check`` returns something truthy within ``for_seconds``.

    A bounded wait proves nothing about what happens after it: use this only where no later event
    can show that the thing did not happen, and say at the call why a bounded wait is the only
    evidence.
    """
    deadline = time.monotonic() + for_seconds
    while True:
        if value := check():
            raise AssertionError(f"{what or 'the event'} happened: {value!r}")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


async def never_async(
    check: Callable[[], object], for_seconds: float, interval: float = 0.05, what: str = ""
) -> None:
    """``never`` for a test on an event loop (``check`` may be a coroutine function)."""
    deadline = time.monotonic() + for_seconds
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            raise AssertionError(f"{what or 'the event'} happened: {value!r}")
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)


# --- Recordings ------------------------------------------------------------------------------


@dataclass
class Clip:
    path: Path
    language: str
    duration: float
    reference: str


def load_manifest(directory: Path = DATA_DIR) -> list[Clip]:
    """The clips of ``directory``'s MANIFEST.tsv (none where the directory is absent)."""
    manifest = directory / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [
        Clip(
            directory / r["relpath"],
            r["language"],
            float(r["duration_seconds"]),
            r["reference_text"],
        )
        for r in rows
    ]


# Five different LJ Speech sentences, 43 s together: longer than one 30 s window, never repetitive.
LONG_CLIPS = [f"coqui_tts_ljspeech/LJ001-000{i}.flac" for i in (1, 3, 5, 7, 9)]


def clip(relpath: str) -> Path:
    """A committed test recording; a missing one is a broken checkout, never a skip."""
    path = DATA_DIR / relpath
    if not path.exists():
        raise FileNotFoundError(f"test audio {path} is missing (see tests/data/MANIFEST.tsv)")
    return path


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing transcripts."""
    cleaned = "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text)
    return cleaned.split()


# --- The checkout ----------------------------------------------------------------------------


def repository_files() -> list[str]:
    """The checkout's own files (tracked or not ignored), without any virtual environment a
    developer made inside it (``python3 -m venv v``): what a linter or the Supervisor would see."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        files = out.splitlines()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk the tree
        files = [str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file()]
    venvs = {str(p.parent.relative_to(REPO)) for p in REPO.glob("*/pyvenv.cfg")}
    return [f for f in files if Path(f).parts[0] not in venvs and (REPO / f).is_file()]


# --- Skips -----------------------------------------------------------------------------------
# A skip hides a test, so CI (WHISPER_TEST_NO_SKIPS=1, set by .ci/run) fails the run on any skip
# except those whose reason starts with PLATFORM_ONLY: tests that need hardware this machine
# cannot have (Apple silicon, a CUDA device, another C library). conftest.py's hooks enforce it.
PLATFORM_ONLY = "platform-only: "


def skip_platform(reason: str) -> None:
    import pytest  # here, not above: the benches import this module without pytest's needs

    pytest.skip(PLATFORM_ONLY + reason)


# --- The server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """``python -m wyoming_whisper`` running on loopback; stop() sends SIGTERM."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    wyoming_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    preexec_fn: Callable[[], None] | None = None  # e.g. resource limits for fault tests

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_dir: Path, wait: bool = True, timeout: float = 120.0) -> ServerProcess:
        self.log_path = log_dir / f"server-{self.port}.log"
        # Run this checkout's package even where another copy is installed (git worktrees).
        pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": pythonpath, **self.env}
        cmd = [
            sys.executable,
            "-m",
            "wyoming_whisper",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--wyoming-port",
            str(self.wyoming_port),
            *self.args,
        ]
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                cmd,
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self.preexec_fn,
            )
        if wait:
            self.wait_ready(timeout)
        return self

    def health(self) -> dict:
        with urllib.request.urlopen(self.url + "/health", timeout=5) as resp:
            return json.loads(resp.read())

    def wait_ready(self, timeout: float = 120.0, *, loaded: bool = True) -> dict:
        """Wait until /health answers (and, with ``loaded``, every model is loaded)."""

        def answered() -> dict | None:
            assert self.proc is not None
            if self.proc.poll() is not None:  # not retried: a dead server never gets ready
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log()}")
            status = self.health()
            if not loaded or all(m["state"] == "loaded" for m in status["models"]):
                return status
            return None

        try:
            return eventually(answered, timeout, interval=0.1, what="server ready")
        except (TimeoutError, *RETRIED) as err:
            raise TimeoutError(f"server not ready: {err!r}\n{self.log()}") from err

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
