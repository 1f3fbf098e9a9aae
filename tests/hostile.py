"""What every hostile-input test measures while it attacks a server: the server process's peak
RSS growth and the slowest ``/health`` answer, sampled in the background; then a normal
transcription to show the server still serves. The server is a real one, or the one in this
process (tests/inprocess.py) where the attack is on a door and not on decoding: then the
process measured is the test's own, its own clients included (a stricter bound).

Used by ``tests/test_hostile_*.py`` and the all-at-once test; one definition so every case
reports the same figures (MB of peak RSS over the baseline, ms of the slowest /health).
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from types import TracebackType

import psutil

from .harness import ServerProcess, clip
from .http_helpers import SHORT, post_audio, short_ok
from .inprocess import InProcess

RSS_BOUND_MB = 64.0  # peak growth allowed during an attack
HEALTH_BOUND_MS = 250.0  # the slowest /health answer allowed during an attack


@dataclass
class Watch:
    """Samples a server's RSS (every 10 ms) and /health latency (every 50 ms) until closed."""

    srv: ServerProcess | InProcess
    baseline_mb: float = 0.0
    peak_mb: float = 0.0
    health_ms: list[float] = field(default_factory=list)
    health_failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Watch:
        if isinstance(self.srv, InProcess):
            self._proc = psutil.Process(os.getpid())
        else:
            assert self.srv.proc is not None
            self._proc = psutil.Process(self.srv.proc.pid)
        self.baseline_mb = self.peak_mb = self._rss()
        self._threads = [
            threading.Thread(target=self._sample_rss, daemon=True),
            threading.Thread(target=self._probe_health, daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def _rss(self) -> float:
        return float(self._proc.memory_info().rss) / 1e6

    def _sample_rss(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_mb = max(self.peak_mb, self._rss())
            except psutil.Error:
                return
            time.sleep(0.01)

    def _probe_health(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.srv.url + "/health", timeout=5) as resp:
                    resp.read()
                self.health_ms.append((time.monotonic() - started) * 1000)
            except OSError:
                self.health_failures += 1
            self._stop.wait(0.05)

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.baseline_mb

    @property
    def slowest_ms(self) -> float:
        return max(self.health_ms, default=0.0)

    def summary(self) -> str:
        return (
            f"peak RSS +{self.growth_mb:.1f} MB, slowest /health {self.slowest_ms:.0f} ms "
            f"({len(self.health_ms)} probes, {self.health_failures} failed)"
        )

    def check(self) -> None:
        """The bounds every attack must stay within."""
        assert self.health_ms, "no /health answer during the attack"
        assert self.health_failures == 0, self.summary()
        assert self.growth_mb < RSS_BOUND_MB, self.summary()
        assert self.slowest_ms < HEALTH_BOUND_MS, self.summary()


def still_serves(srv: ServerProcess | InProcess) -> None:
    """A normal transcription right after an attack is answered, and right (in process: with
    what the fake model answered for the whole clip). Blocking: a test on the in-process
    server's own loop cannot call it (``in_thread`` runs one on a loop of its own)."""
    status, body, _ = post_audio(srv.url, clip(SHORT).read_bytes())
    assert status == 200, body
    if isinstance(srv, InProcess):
        decode = srv.backend.decodes[-1]
        assert body["text"] == srv.backend.answer(decode.model), body
        assert 1.5 < decode.seconds < 1.6, decode
    else:
        assert short_ok(body["text"]), body
