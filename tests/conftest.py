"""pytest's fixtures and hooks: the shared server, the private-server factory, the skip rule.

The server process, the recordings and the waiting helpers they use are in tests/harness.py, a
module the tests and benches import (a conftest is pytest's to load, not a library). Every test
that transcribes runs the real model from its PyPI pack; nothing here is mocked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import PLATFORM_ONLY, ServerProcess


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
# CI (WHISPER_TEST_NO_SKIPS=1) fails the run on any skip but a PLATFORM_ONLY one (harness.py).
_skipped: list[tuple[str, str]] = []


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
