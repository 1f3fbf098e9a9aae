"""Faults the server must survive: broken model files, failed loads, signals, an unusable cache."""

from __future__ import annotations

import asyncio
import resource
import shutil
import signal
import time
from pathlib import Path

import aiohttp
import psutil

from wyoming_whisper.backends.ctranslate2_models import PACKS

from .harness import ServerProcess, clip, eventually, eventually_async, words
from .http_helpers import SHORT, long_wav, post_audio, short_ok
from .wyoming_client import load_pcm16, transcribe


def _unload(srv: ServerProcess) -> None:
    import urllib.request

    req = urllib.request.Request(srv.url + "/v1/model/unload", data=b"", method="POST")
    urllib.request.urlopen(req, timeout=30).read()


def _model_health(srv: ServerProcess, name: str) -> dict:
    status = srv.health()
    return {"status": status["status"], **next(m for m in status["models"] if m["name"] == name)}


def _wait_loaded_or_failed(srv: ServerProcess, name: str) -> None:
    eventually(
        lambda: _model_health(srv, name)["state"] != "loading",
        60,
        interval=0.1,
        what=f"{name} done loading",
    )


async def test_model_files_deleted_or_corrupted_then_restored(start_server, tmp_path: Path) -> None:
    model_dir = tmp_path / "tiny"
    shutil.copytree(PACKS["tiny.en"].locate(), model_dir)
    srv: ServerProcess = start_server("-m", str(model_dir), "--preload", "--no-zeroconf")
    audio = clip(SHORT).read_bytes()
    pcm = load_pcm16(clip(SHORT))
    weights = model_dir / "model.bin"
    backup = tmp_path / "model.bin.bak"
    shutil.copy2(weights, backup)

    def broken(what: str) -> None:
        _unload(srv)  # the next request loads from disk again (as after the TTL)
        status, body, _ = post_audio(srv.url, audio)
        assert status == 503, (what, body)
        assert body["error"]["code"] == "model_unavailable"
        assert "could not be loaded" in body["error"]["message"]
        health = _model_health(srv, str(model_dir))
        assert health["status"] == "degraded" and health["state"] == "error", health
        assert health["error"]

    for what in ("deleted", "corrupted", "truncated"):
        if what == "deleted":
            weights.unlink()
        elif what == "corrupted":
            weights.write_bytes(b"\x00garbage" * 4096)
        else:
            weights.write_bytes(backup.read_bytes()[: backup.stat().st_size // 3])
        broken(what)
        event = await transcribe("127.0.0.1", srv.wyoming_port, pcm)
        assert event.type == "error" and event.data["code"] == "model_unavailable"
        shutil.copy2(backup, weights)  # restored: the next request loads it again
        status, body, _ = post_audio(srv.url, audio)
        assert status == 200 and short_ok(body["text"]), (what, body)
        assert _model_health(srv, str(model_dir))["state"] == "loaded"
    assert srv.proc is not None and srv.proc.poll() is None
    assert "Traceback" not in srv.log()


async def test_model_load_out_of_memory(start_server) -> None:
    """A load that cannot get memory fails cleanly; other models serve; it loads once it can."""
    srv: ServerProcess = start_server("-m", "tiny.en", "-m", "base", "--preload", "--no-zeroconf")
    assert srv.proc is not None
    _unload(srv)
    audio = clip(SHORT).read_bytes()
    assert post_audio(srv.url, audio)[0] == 200  # tiny.en back, pools warm
    proc = psutil.Process(srv.proc.pid)
    soft, hard = proc.rlimit(resource.RLIMIT_AS)
    # Room for a request on the loaded tiny.en (a new thread's stack, decode buffers), not for
    # base's weights (145 MB of float16 read and converted to int8).
    proc.rlimit(resource.RLIMIT_AS, (proc.memory_info().vms + 80_000_000, hard))
    try:
        status, body, _ = post_audio(srv.url, audio, {"model": "base"})
        assert status == 503 and body["error"]["code"] == "model_unavailable", body
        assert _model_health(srv, "base")["state"] == "error"
        status, body, _ = post_audio(srv.url, audio, {"model": "tiny.en"})
        assert status == 200 and short_ok(body["text"]), body
    finally:
        proc.rlimit(resource.RLIMIT_AS, (soft, hard))
    status, body, _ = post_audio(srv.url, audio, {"model": "base"})
    assert status == 200 and short_ok(body["text"]), body
    assert _model_health(srv, "base")["state"] == "loaded"
    assert srv.proc.poll() is None


async def test_decode_out_of_memory_is_503_not_500(start_server) -> None:
    """A decode that cannot get memory answers 503 out_of_memory (never a 500); the server lives."""
    srv: ServerProcess = start_server("-m", "tiny.en", "--preload", "--no-zeroconf")
    assert srv.proc is not None
    audio = long_wav(40, srv.log_path.parent / "oom-40s.wav").read_bytes()
    assert post_audio(srv.url, audio)[0] == 200  # pools warm
    proc = psutil.Process(srv.proc.pid)
    soft, hard = proc.rlimit(resource.RLIMIT_AS)
    # Room for the server's bookkeeping (a new arena for small objects, the callback that hands a
    # worker's result back to the event loop), none for a decode's buffers: with no room at all,
    # whichever small allocation fails first decides what this test sees.
    proc.rlimit(resource.RLIMIT_AS, (proc.memory_info().vms + 16 * 2**20, hard))
    try:
        answers = [post_audio(srv.url, audio) for _ in range(3)]
    finally:
        proc.rlimit(resource.RLIMIT_AS, (soft, hard))
    statuses = [status for status, _, _ in answers]
    print(f"decodes with no memory to spare: {statuses}")  # 503 x 3 here: numpy's MemoryError
    assert 500 not in statuses, answers
    for status, body, headers in answers:
        if status == 503:
            assert (
                body["error"]["code"] == "out_of_memory" and body["error"]["type"] == "server_error"
            )
            assert headers["Retry-After"] == "5"
    status, body, _ = post_audio(srv.url, clip(SHORT).read_bytes())
    assert status == 200 and short_ok(body["text"]), body
    assert srv.proc.poll() is None


def test_sigterm_during_model_load(start_server, tmp_path: Path) -> None:
    # A fresh cache: base is assembled from its pack and then loaded, a few seconds.
    srv: ServerProcess = start_server(
        "-m", "base", "--cache-dir", str(tmp_path / "cache"), "--no-zeroconf", wait=False
    )
    assert srv.proc is not None
    srv.wait_ready(loaded=False)
    assert _model_health(srv, "base")["state"] == "loading"
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(30) == 0, srv.log()
    assert time.monotonic() - started < 30
    assert "Traceback" not in srv.log()
    assert psutil.pid_exists(srv.proc.pid) is False or psutil.Process(srv.proc.pid).status() == (
        psutil.STATUS_ZOMBIE
    )


async def test_sigterm_during_http_transcription(start_server, tmp_path: Path) -> None:
    srv: ServerProcess = start_server("-m", "tiny.en", "--preload", "--no-zeroconf")
    assert srv.proc is not None
    audio = long_wav(30, tmp_path / "30.wav").read_bytes()
    from .http_helpers import multipart

    body, ctype = multipart({"model": "whisper-1"}, audio)
    async with aiohttp.ClientSession() as session:
        request = asyncio.create_task(
            session.post(
                srv.url + "/v1/audio/transcriptions", data=body, headers={"Content-Type": ctype}
            )
        )
        await eventually_async(
            lambda: any(m["active_requests"] for m in srv.health()["models"]),
            30,
            interval=0.02,
            what="the request decoding",
        )
        srv.proc.send_signal(signal.SIGTERM)
        resp = await asyncio.wait_for(request, 30)
        assert resp.status == 200
        assert len(words((await resp.json())["text"])) > 20
    code = await asyncio.get_running_loop().run_in_executor(None, srv.proc.wait, 20)
    assert code == 0 and "Traceback" not in srv.log()


def _limit_file_size() -> None:
    """A full disk, as far as this process can tell: writes past 20 MB fail with EFBIG."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000_000, 20_000_000))


def _assert_base_refused_and_tiny_serves(srv: ServerProcess, cache: Path) -> str:
    audio = clip(SHORT).read_bytes()
    for _ in range(2):  # a retry fails the same way: never a half-written model
        status, body, _ = post_audio(srv.url, audio, {"model": "base"})
        assert status == 503 and body["error"]["code"] == "model_unavailable", body
    health = _model_health(srv, "base")
    assert health["state"] == "error" and health["error"]
    status, body, _ = post_audio(srv.url, audio, {"model": "tiny.en"})
    assert status == 200 and short_ok(body["text"])
    return str(health["error"])


def test_cache_full_while_assembling(start_server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    srv = ServerProcess(
        ["-m", "tiny.en", "-m", "base", "--cache-dir", str(cache), "--no-zeroconf"],
        preexec_fn=_limit_file_size,
    )
    srv.start(tmp_path, wait=False)
    try:
        srv.wait_ready(loaded=False)
        _wait_loaded_or_failed(srv, "base")
        error = _assert_base_refused_and_tiny_serves(srv, cache)
        assert "too large" in error.lower() or "space" in error.lower(), error
        packs = cache / "packs"
        assert not (packs / "base").exists()  # no half model under the final name
        assert [p.name for p in packs.iterdir()] == []  # the partial copy is gone too
    finally:
        assert srv.stop() == 0


def test_cache_not_writable_while_assembling(start_server, tmp_path: Path) -> None:
    # A file where the packs folder should be: fails even for root, unlike chmod.
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "packs").write_text("not a directory")
    srv: ServerProcess = start_server(
        "-m", "tiny.en", "-m", "base", "--cache-dir", str(cache), "--no-zeroconf", wait=False
    )
    srv.wait_ready(loaded=False)
    _wait_loaded_or_failed(srv, "base")
    error = _assert_base_refused_and_tiny_serves(srv, cache)
    assert "packs" in error, error
    assert (cache / "packs").read_text() == "not a directory"
