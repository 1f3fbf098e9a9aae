"""glibc's allocator, tuned so a long-running server's memory stays flat and small.

glibc gives each thread that meets contention its own arena (up to 8 per core), and memory freed
in one arena is not handed back to the others or to the system. Decoding threads, the VAD
executor and the event loop each churn through audio-sized buffers, so the resident size of a busy
server wanders by tens of MB from request to request although nothing leaks (measured: +/-30 MB
over 500 Wyoming requests; flat within 3 MB with two arenas, at the same speed). One arena holds
one decode's scratch where two held it twice, once for each CTranslate2 replica that ran a
command (tiny.en under 4 clients: peak 249-252 -> 231-234 MB; the same time for 40 commands and
for a long recording's two lanes at once, AMD EPYC): ``MALLOC_ARENA_MAX=1``. A value the user set
wins.

glibc also keeps freed pages mapped. ``trim`` hands them back (about 2 ms), and the next decode
pays for them again in page faults. ``IdleTrim`` says when that is worth it: a command's scratch
is the same every time and stays mapped; what a longer recording's decode freed is handed back
once the server goes idle.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import platform

_LOGGER = logging.getLogger(__name__)

M_ARENA_MAX = -8  # from glibc's malloc.h
DEFAULT_ARENAS = 1


def _glibc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


_LIBC = _glibc()


def cap_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Call ``mallopt(M_ARENA_MAX, arenas)`` on glibc before worker threads start.

    Returns whether the cap was set. Does nothing where ``MALLOC_ARENA_MAX`` is already in the
    environment (glibc read it at start-up) or where the C library is not glibc.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or _LIBC is None:
        return False
    try:
        mallopt = _LIBC.mallopt
    except AttributeError:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_ARENA_MAX, arenas))
    _LOGGER.debug("malloc arenas capped at %d: %s", arenas, ok)
    return ok


def trim() -> None:
    """Return freed heap pages to the system (glibc's ``malloc_trim``); a no-op elsewhere.

    Blocking for a millisecond or two: call it from a worker thread.
    """
    if _LIBC is not None:
        with contextlib.suppress(AttributeError):
            _LIBC.malloc_trim(0)


class IdleTrim:
    """Whether an idle server hands its freed heap back: only after audio longer than ``samples``.

    A trim costs the next request its page faults: tiny.en, a 2.7 s command over Wyoming, 152 ms
    with a trim after every request, 137 ms without (AMD EPYC, 2 vCPUs). A command reuses the
    scratch the last one freed, so keeping it mapped holds no more than the busiest moment
    did; a long recording's decode (30 s windows, two lanes of chunks) frees far more.
    """

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self._pending = False

    def note(self, samples: int) -> None:
        """Audio of this many samples is being decoded (or was read from an upload)."""
        if samples > self.samples:
            self._pending = True

    def due(self) -> bool:
        """Whether to trim now that the server is idle (once per long decode since the last)."""
        pending, self._pending = self._pending, False
        return pending
