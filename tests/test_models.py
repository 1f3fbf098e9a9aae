"""Model manager behaviour on the real server: background load, TTL unload, reload, failures."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import psutil
import pytest
from wyoming.asr import Transcribe

from wyoming_whisper.backends.ctranslate2_models import PACKS

from .harness import ServerProcess, clip, eventually, eventually_async, words
from .http_helpers import SHORT, long_wav, post_audio, post_json, short_ok
from .wyoming_client import load_pcm16, transcribe

MB = 1024 * 1024


def model_state(server: ServerProcess, name: str) -> dict:
    return next(m for m in server.health()["models"] if m["name"] == name)


def wait_state(server: ServerProcess, name: str, state: str, timeout: float = 30) -> dict:
    def reached() -> dict | None:
        status = model_state(server, name)
        return status if status["state"] == state else None

    return eventually(reached, timeout, interval=0.1, what=f"{name} {state}")


def rss(server: ServerProcess) -> int:
    assert server.proc is not None
    return int(psutil.Process(server.proc.pid).memory_info().rss)


async def test_ttl_unloads_frees_memory_and_reloads(start_server) -> None:
    srv: ServerProcess = start_server("-m", "base", "--ttl", "2", "--no-zeroconf")
    pcm = load_pcm16(clip("speech_recognition/english.wav"))
    loaded = wait_state(srv, "base", "loaded", 120)
    assert loaded["ttl"] == 2 and loaded["loads"] == 1
    unloaded = wait_state(srv, "base", "unloaded", 15)
    assert unloaded["seconds_until_unload"] is None

    # A first use warms what every process keeps after its first decode (thread pools, scratch
    # buffers); from then on, each load and unload must return RSS to where it was.
    event = await transcribe("127.0.0.1", srv.wyoming_port, pcm)
    assert event.type == "transcript" and words(event.data["text"])
    wait_state(srv, "base", "unloaded", 15)
    time.sleep(0.3)
    before = rss(srv)

    event = await transcribe("127.0.0.1", srv.wyoming_port, pcm)
    assert event.type == "transcript" and words(event.data["text"])
    status = model_state(srv, "base")
    assert status["state"] == "loaded" and status["loads"] == 3
    assert 0 < status["seconds_until_unload"] <= 2
    assert status["last_used"] is not None
    with_model = rss(srv)
    assert with_model - before > 40 * MB, "loading base should take memory"

    wait_state(srv, "base", "unloaded", 15)
    time.sleep(0.3)
    after = rss(srv)
    assert after - before < 40 * MB, (before // MB, with_model // MB, after // MB)

    event = await transcribe("127.0.0.1", srv.wyoming_port, pcm)
    assert event.type == "transcript" and model_state(srv, "base")["loads"] == 4


async def test_background_load_and_single_flight(start_server) -> None:
    """Ports open while models load; racing requests for an unloaded model share one load."""
    srv: ServerProcess = start_server("-m", "tiny.en", "--ttl", "1", "--no-zeroconf", wait=False)
    srv.wait_ready(loaded=False)
    wait_state(srv, "tiny.en", "loaded", 60)
    wait_state(srv, "tiny.en", "unloaded", 10)
    loads = model_state(srv, "tiny.en")["loads"]
    pcm = load_pcm16(clip("speech_recognition/english.wav"))
    results = await asyncio.gather(
        *(transcribe("127.0.0.1", srv.wyoming_port, pcm) for _ in range(3))
    )
    assert all(r.type == "transcript" for r in results)
    assert model_state(srv, "tiny.en")["loads"] == loads + 1


async def test_failed_load_is_reported_and_retried(start_server, tmp_path: Path) -> None:
    source = PACKS["tiny.en"].locate()
    model_dir = tmp_path / "tiny-copy"
    shutil.copytree(source, model_dir)
    good = (model_dir / "model.bin").read_bytes()
    (model_dir / "model.bin").write_bytes(good[: len(good) // 3])
    name = str(model_dir)
    srv: ServerProcess = start_server("-m", name, "--no-zeroconf", wait=False)
    srv.wait_ready(loaded=False)
    status = wait_state(srv, name, "error", 60)
    assert status["error"]
    assert srv.health()["status"] == "degraded"

    pcm = load_pcm16(clip("speech_recognition/english.wav"))
    event = await transcribe("127.0.0.1", srv.wyoming_port, pcm)
    assert event.type == "error" and "could not be loaded" in event.data["text"]

    (model_dir / "model.bin").write_bytes(good)
    event = await transcribe("127.0.0.1", srv.wyoming_port, pcm, transcribe=Transcribe(name=name))
    assert event.type == "transcript", event.data
    assert model_state(srv, name)["state"] == "loaded"


async def test_preload_opens_ports_after_loading(start_server) -> None:
    srv: ServerProcess = start_server("-m", "tiny.en", "--preload", "--no-zeroconf", wait=False)
    status = srv.wait_ready(loaded=False)
    # The first answer /health ever gives already shows the model loaded.
    assert status["models"][0]["state"] == "loaded"


@pytest.mark.parametrize("model", ["no-such-model", "/nonexistent/model/dir"])
def test_download_only_unknown_model_fails_clearly(model: str) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "wyoming_whisper", "--download-only", "-m", model],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert model in proc.stderr and "Traceback" not in proc.stderr


def test_download_only_assembles_packs(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wyoming_whisper",
            "--download-only",
            "-m",
            "tiny.en",
            "-m",
            "base",
            "--cache-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "packs" / "base" / "model.bin").is_file()
    assert not [p for p in (tmp_path / "packs").iterdir() if p.name.startswith(".")]


async def test_unload_while_decoding_waits_for_the_answer(start_server, tmp_path: Path) -> None:
    """An unload asked during a decode loses nothing: the model goes once the answer is out."""
    srv: ServerProcess = start_server("-m", "tiny.en", "--preload", "--ttl", "0", "--no-zeroconf")
    audio = long_wav(40, tmp_path / "long.wav").read_bytes()
    pending = asyncio.create_task(asyncio.to_thread(post_audio, srv.url, audio))

    def decoding() -> bool:
        if pending.done():  # pytest.fail, not assert: eventually retries a failed assert
            pytest.fail("answered before the test saw it decoding")
        return model_state(srv, "tiny.en")["active_requests"] > 0

    await eventually_async(decoding, 30, interval=0.02, what="the decode running")
    reply = await asyncio.to_thread(post_json, srv.url + "/v1/model/unload", {"model": "tiny.en"})
    assert reply["unloaded"] == [] and reply["was_loaded"] is False, reply
    status = model_state(srv, "tiny.en")
    assert status["unload_pending"] is True and status["state"] == "loaded", status
    code, body, _ = await asyncio.wait_for(pending, 120)
    assert code == 200 and len(words(body["text"])) > 20, body
    status = wait_state(srv, "tiny.en", "unloaded", 15)
    assert status["unload_pending"] is False and status["loaded"] is False
    # The next request loads it again.
    code, body, _ = await asyncio.to_thread(post_audio, srv.url, clip(SHORT).read_bytes())
    assert code == 200 and short_ok(body["text"]) and model_state(srv, "tiny.en")["loads"] == 2
