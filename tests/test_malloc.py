"""The malloc arena cap: set on glibc, left to the user where MALLOC_ARENA_MAX is given."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import psutil
import pytest

from wyoming_whisper.malloc import IdleTrim, cap_arenas, trim

from .harness import PLATFORM_ONLY


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason=PLATFORM_ONLY + "glibc only")
def test_cap_set_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert cap_arenas() is True


def test_user_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert cap_arenas() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason=PLATFORM_ONLY + "glibc only")
def test_trim_returns_freed_heap_pages() -> None:
    """64 MB freed below a live block stays resident until trim() hands it back."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    size = 64 * 1024  # under the mmap threshold: from the heap
    blocks = [libc.malloc(size) for _ in range(1024)]
    for block in blocks:
        ctypes.memset(block, 1, size)
    top = libc.malloc(size)  # keeps the heap from shrinking by itself
    for block in blocks:
        libc.free(block)
    process = psutil.Process()
    before = process.memory_info().rss
    trim()
    after = process.memory_info().rss
    libc.free(top)
    assert before - after > 48 * 1024 * 1024, (before >> 20, after >> 20)


def test_idle_trim_only_after_audio_longer_than_a_command() -> None:
    """Commands keep their scratch mapped (a trim costs the next one its page faults); a long
    recording's is handed back once, at the next idle moment."""
    policy = IdleTrim(30 * 16000)
    assert not policy.due()
    policy.note(3 * 16000)
    policy.note(30 * 16000)
    assert not policy.due()
    policy.note(31 * 16000)
    policy.note(2 * 16000)
    assert policy.due() and not policy.due()
