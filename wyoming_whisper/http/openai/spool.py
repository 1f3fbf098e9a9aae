"""Spooled uploads: the temporary files an upload's audio is written to, named by the process.

Each process's uploads carry its pid (``whisper-upload-<pid>-<random>``), so a starting server
deletes the files a killed one left and keeps those of live servers sharing the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile

from ...engine import Engine

UPLOAD_PREFIX = "whisper-upload-"  # spooled uploads: whisper-upload-<pid>-<random>, no suffix


def spool_prefix() -> str:
    """Each process's uploads carry its pid, so a starting server tells a dead one's apart."""
    return f"{UPLOAD_PREFIX}{os.getpid()}-"


def sweep_uploads(directory: str | None = None) -> int:
    """Delete the uploads of servers no longer running (a hard kill leaves its spooled files);
    those of live servers sharing the directory stay. Blocking: run once at start-up."""
    directory = directory or tempfile.gettempdir()
    removed = 0
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            pid = _spooled_by(entry.name)
            if pid is None or pid == os.getpid() or _alive(pid) or not entry.is_file():
                continue
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed += 1
    return removed


def _spooled_by(name: str) -> int | None:
    """The pid in a spooled upload's name (``whisper-upload-<pid>-<random>``), or None."""
    if not name.startswith(UPLOAD_PREFIX):
        return None
    pid, sep, _ = name[len(UPLOAD_PREFIX) :].partition("-")
    return int(pid) if sep and pid.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


async def discard(engine: Engine, path: str) -> None:
    """Delete a spooled upload off the loop (at once if the request is being cancelled)."""
    try:
        await engine.run_audio(_remove, path)
    except asyncio.CancelledError:
        _remove(path)
        raise


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
