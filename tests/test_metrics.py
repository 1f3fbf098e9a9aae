"""GET /metrics: Prometheus text format, fed by real requests on every front door, on the server in
process over a fake model (tests/inprocess.py): what is counted, not what is transcribed."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from .harness import clip
from .http_helpers import SHORT, metric, metrics, post_audio
from .inprocess import InProcess, in_thread
from .wyoming_client import load_pcm16, transcribe

ANSWER = " In eighteen thirteen."


async def test_metrics_count_requests_audio_inference_and_models() -> None:
    # Only the finals decode: the fake answers at once, so a live decode of the Wyoming request's
    # first half second would finish (and count) too, where a real one is overtaken.
    speculative = ("--no-live-text", "--no-early-decoding")
    async with in_thread("-m", "tiny.en", "--preload", *speculative) as srv:
        srv.backend.text = ANSWER
        await counted(srv)


async def counted(srv: InProcess) -> None:
    before = metrics(srv.url)
    assert metric(before, "whisper_model_loads_total", model="tiny.en") == 1
    assert metric(before, "whisper_model_load_seconds", model="tiny.en") > 0
    assert metric(before, "whisper_model_loaded", model="tiny.en") == 1
    assert metric(before, "whisper_queue_depth", model="tiny.en") == 0
    assert metric(before, "process_resident_memory_bytes") > 50e6
    assert metric(before, "process_open_fds") > 0

    status, body, _ = post_audio(srv.url, clip(SHORT).read_bytes())
    assert status == 200 and body["text"] == ANSWER.strip()
    assert post_audio(srv.url, b"garbage" * 10)[0] == 400
    event = await transcribe("127.0.0.1", srv.wyoming_port, load_pcm16(clip(SHORT)))
    assert event.type == "transcript"

    after = metrics(srv.url)
    route = "/v1/audio/transcriptions"
    assert metric(after, "whisper_requests_total", route=route, status="200") == 1
    assert metric(after, "whisper_requests_total", route=route, status="400") == 1
    assert metric(after, "whisper_requests_total", route="wyoming", status="ok") == 1
    audio = metric(after, "whisper_audio_seconds_total", model="tiny.en")
    assert 2 * 1.5 <= audio < 2 * 1.6  # two decodes of the 1.54 s clip
    assert metric(after, "whisper_inference_seconds_total", model="tiny.en") > 0
    assert metric(after, "whisper_real_time_factor_count", model="tiny.en") == 2
    assert metric(after, "whisper_request_duration_seconds_count", route=route) == 2
    assert metric(after, "whisper_rejected_requests_total", model="tiny.en") == 0

    # Unload and load again: counted.
    req = urllib.request.Request(srv.url + "/v1/model/unload", data=b"", method="POST")
    urllib.request.urlopen(req, timeout=30).read()
    assert metric(metrics(srv.url), "whisper_model_loaded", model="tiny.en") == 0
    assert post_audio(srv.url, clip(SHORT).read_bytes())[0] == 200
    final = metrics(srv.url)
    assert metric(final, "whisper_model_unloads_total", model="tiny.en") == 1
    assert metric(final, "whisper_model_loads_total", model="tiny.en") == 2


def test_metrics_open_with_api_key() -> None:
    """Like /health, /metrics needs no key (scrapers rarely send one); /v1 still does."""
    with in_thread("-m", "tiny.en", "--api-key", "k") as srv:
        with urllib.request.urlopen(srv.url + "/metrics", timeout=10) as resp:
            assert resp.status == 200
            assert b"# TYPE whisper_requests_total counter" in resp.read()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(srv.url + "/v1/models", timeout=10)
        assert info.value.code == 401
