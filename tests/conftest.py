"""Shared fixtures: the real server as a subprocess on free loopback ports, and real audio.

Every test that transcribes runs the real model from its PyPI pack; nothing here is mocked.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The recordings every test uses, committed with their sources and licences (tests/data/build.py).
DATA_DIR = REPO / "tests" / "data"
# The larger shared set (benches): optional, absent from a clone of the public repository.
AUDIO_DIR = Path(os.environ.get("WHISPER_TEST_AUDIO", REPO.parent / "shared" / "audio"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing transcripts."""
    cleaned = "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text)
    return cleaned.split()


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
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log()}")
            try:
                status = self.health()
                if not loaded or all(m["state"] == "loaded" for m in status["models"]):
                    return status
            except OSError as err:
                last = err
            time.sleep(0.1)
        raise TimeoutError(f"server not ready: {last}\n{self.log()}")

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


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def server(log_dir: Path) -> Iterator[ServerProcess]:
    """One shared server: tiny.en (default) and base, preloaded, zeroconf off."""
    srv = ServerProcess(["-m", "tiny.en", "-m", "base", "--preload", "--no-zeroconf"])
    srv.start(log_dir)
    yield srv
    srv.stop()


@pytest.fixture
def start_server(log_dir: Path) -> Iterator:
    """Factory for a private server with its own flags; stopped after the test."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True) -> ServerProcess:
        srv = ServerProcess(list(args), env=env or {})
        started.append(srv)
        return srv.start(log_dir, wait=wait)

    yield start
    for srv in started:
        if srv.proc and srv.proc.poll() is None:
            srv.stop()


# --- Skips ----------------------------------------------------------------------------------
# A skip hides a test, so CI (WHISPER_TEST_NO_SKIPS=1, set by .ci/run) fails the run on any skip
# except those whose reason starts with PLATFORM_ONLY: tests that need hardware this machine
# cannot have (Apple silicon, a CUDA device, another C library).
PLATFORM_ONLY = "platform-only: "
_skipped: list[tuple[str, str]] = []


def skip_platform(reason: str) -> None:
    pytest.skip(PLATFORM_ONLY + reason)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        if not reason.startswith(PLATFORM_ONLY):
            _skipped.append((report.nodeid, reason))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if os.environ.get("WHISPER_TEST_NO_SKIPS") and _skipped:
        terminalreporter.section("skips not allowed in CI (WHISPER_TEST_NO_SKIPS)", red=True)
        for nodeid, reason in _skipped:
            terminalreporter.line(f"{nodeid}: {reason}")


_status: list[int] = [0]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("WHISPER_TEST_NO_SKIPS") and _skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    _status[0] = int(session.exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without C++ static destructors once real MLX has decoded in this process.

    MLX's Linux CPU build (mlx 0.32.4, the tests' stand-in for Apple silicon) aborts in them
    after a decode on a worker thread ("terminate called without an active exception"), which
    would turn every result into exit code 134. Everything pytest writes is done by now.
    """
    if "mlx.core" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_status[0])
