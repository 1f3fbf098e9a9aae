"""The core without a model: the engine's admission and model names, the manager's single-flight
loads and idle TTL, and the Wyoming framing reader. A fake backend stands in for inference only
here (tests/inprocess.py); every test of what a transcript says uses a real model."""

from __future__ import annotations

import asyncio
import gc
import threading

import numpy as np
import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioStart
from wyoming.event import Event

from wyoming_whisper.backends.base import (
    Result,
    decoding_language,
    names_prompt,
)
from wyoming_whisper.commands.home import Entity, Home
from wyoming_whisper.commands.matcher import Commands
from wyoming_whisper.errors import Busy, ModelLoadError, ModelNotFound
from wyoming_whisper.framing import MalformedEvent, ProtocolError, parse, read_event
from wyoming_whisper.models.manager import ModelManager, ModelState

from .harness import eventually_async, never_async
from .inprocess import FakeBackend, FakeModel, engine_with

# --- engine ------------------------------------------------------------------------------------


def test_model_names_map_onto_served_models() -> None:
    engine = engine_with(FakeBackend())
    assert engine.model_name("base") == "base"
    assert engine.model_name("whisper-base") == "base"  # OpenAI-style name of a served model
    for alias in (None, "", "whisper-1", "gpt-4o-transcribe"):
        assert engine.model_name(alias) == "tiny.en"
    with pytest.raises(ModelNotFound, match=r"served models: tiny\.en, base"):
        engine.model_name("large-v3-turbo")


def test_admission_holds_the_running_and_the_queue_then_refuses() -> None:
    engine = engine_with(FakeBackend(), max_concurrency=1, max_queue=1)
    assert engine.admission.capacity == 2 and engine.admission.has_idle_worker
    with engine.admission.admit("tiny.en"), engine.admission.admit("tiny.en"):
        assert not engine.admission.has_idle_worker and engine.admission.queue_depth("tiny.en") == 2
        with pytest.raises(Busy) as info:
            engine.admission.admit("tiny.en").__enter__()
        assert info.value.retry_after == 1
        with engine.admission.admit("base"):  # every model has its own queue
            pass
    assert engine.admission.queue_depth("tiny.en") == 0 and engine.admission.has_idle_worker


async def test_a_decode_runs_on_the_pool_and_reports_its_model() -> None:
    backend = FakeBackend()
    backend.gate.set()
    engine = engine_with(backend)
    job = asyncio.ensure_future(
        engine.transcribe(np.zeros(16000, np.float32), engine.options(), "base")
    )
    # This poll runs while the fake decode waits for its release: the loop does not wait.
    await eventually_async(lambda: backend.made, 5, interval=0.01, what="the model made")
    assert not job.done()
    backend.made[0].release.set()
    result = await job
    assert (result.text, result.duration) == ("base", 1.0)
    await engine.close()
    await engine.manager.close()


class FailingModel(FakeModel):
    raising = threading.Event()

    def transcribe(self, *args: object, **kwargs: object) -> Result:
        self.release.wait(10)
        self.raising.set()
        raise RuntimeError("the decode failed after its caller left")


class FailingBackend(FakeBackend):
    def load(self, path: str) -> FakeModel:
        model = FailingModel(path)
        self.made.append(model)
        return model


async def test_a_decode_whose_caller_left_twice_has_its_fault_retrieved() -> None:
    """A caller cancelled again while it waits for the worker to let go stops waiting; what the
    decode raises afterwards is nobody's, and asyncio must not log it as never retrieved."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    backend = FailingBackend()
    backend.gate.set()
    engine = engine_with(backend)
    try:
        job = asyncio.ensure_future(
            engine.transcribe(np.zeros(16000, np.float32), engine.options(), "base")
        )
        await eventually_async(lambda: backend.made, 5, interval=0.01, what="the model made")
        await asyncio.sleep(0.05)  # (the decode is on its worker)
        job.cancel()
        await asyncio.sleep(0.01)
        job.cancel()  # again, while it waits for the worker
        with pytest.raises(asyncio.CancelledError):
            await job
        backend.made[0].release.set()
        await eventually_async(FailingModel.raising.is_set, 5, what="the decode raised")
        await asyncio.sleep(0.05)  # (its future's callbacks run on the loop)
        del job
        gc.collect()
        await asyncio.sleep(0)
        assert not [c for c in reported if "never retrieved" in str(c.get("message"))], reported
    finally:
        backend.made[0].release.set()
        loop.set_exception_handler(previous)
        await engine.close()
        await engine.manager.close()


@pytest.fixture(scope="module")
def english() -> Commands:
    return Commands("en")


async def test_a_command_is_answered_without_waiting_for_the_audio_to_be_encoded(
    english: Commands,
) -> None:
    """The audio is encoded for the forced passes while the words are matched (on an idle
    worker), but a transcript that is a command already never waits for it; with no idle
    worker nothing is encoded for it at all."""
    backend = FakeBackend()
    backend.gate.set()
    engine = engine_with(backend, max_concurrency=1)
    engine.assist.sentences._loaded["en"] = english
    home = Home(entities=(Entity("Plantuary lamp", "light"),))
    audio = np.zeros(32000, np.float32)
    command = "Turn on the Plantuary lamp."
    text = await asyncio.wait_for(engine.assist.answer(command, "en", home, audio, "tiny.en"), 5)
    assert text == command
    model = backend.made[0]
    assert model.encodes == 1 and not model.release.is_set()  # still encoding: not waited for
    model.release.set()
    with engine.admission.admit("tiny.en"):  # the one worker busy: no speculative encoding
        assert await engine.assist.answer(command, "en", home, audio, "tiny.en") == command
    assert model.encodes == 1
    await engine.close()
    await engine.manager.close()


# --- manager -----------------------------------------------------------------------------------


async def test_concurrent_users_share_one_load() -> None:
    backend = FakeBackend()
    manager = ModelManager(("base",), backend, ttl=0)  # type: ignore[arg-type]

    async def use() -> object:
        async with manager.use("base") as model:
            return model

    users = [asyncio.ensure_future(use()) for _ in range(5)]
    await eventually_async(
        lambda: manager.models["base"].state is ModelState.LOADING, 5, what="base loading"
    )
    backend.gate.set()
    models = await asyncio.gather(*users)
    assert backend.loads == ["base"] and all(m is models[0] for m in models)
    await manager.close()


async def test_idle_ttl_unloads_but_never_under_a_user() -> None:
    backend = FakeBackend()
    backend.gate.set()
    manager = ModelManager(("base",), backend, ttl=0.1)  # type: ignore[arg-type]
    async with manager.use("base"):
        # The TTL is a clock: only time past it (three times over) shows it does not fire
        # under a user; no later event would follow an unload that did not happen.
        await never_async(
            lambda: manager.models["base"].state is not ModelState.LOADED,
            0.3,
            what="base unloaded while in use",
        )
    status = manager.models["base"].status()
    assert status["seconds_until_unload"] is not None and status["ttl_seconds"] == 0.1
    await eventually_async(
        lambda: manager.models["base"].state is ModelState.UNLOADED and backend.made[0].unloaded,
        5,
        what="base unloaded after its TTL",
    )
    async with manager.use("base"):  # the next user loads it again
        pass
    assert backend.loads == ["base", "base"]
    await manager.close()


async def test_a_failed_load_is_reported_and_retried() -> None:
    backend = FakeBackend(fail={"base"})
    backend.gate.set()
    manager = ModelManager(("base",), backend, ttl=0)  # type: ignore[arg-type]
    with pytest.raises(ModelLoadError, match="no weights for base"):
        async with manager.use("base"):
            pass
    assert manager.models["base"].status()["error"] == "no weights for base"
    backend.fail.clear()
    async with manager.use("base"):
        assert manager.models["base"].state is ModelState.LOADED
    await manager.close()


# --- framing -----------------------------------------------------------------------------------


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_an_event_with_data_and_payload() -> None:
    raw = b'{"type": "audio-chunk", "data": {"rate": 16000}, "data_length": 27, '
    raw += b'"payload_length": 4}\n{"width": 2, "channels": 1}\x01\x02\x03\x04'
    event = await read_event(reader_of(raw))
    assert event is not None
    assert (event.type, event.data, event.payload) == (
        "audio-chunk",
        {"rate": 16000, "width": 2, "channels": 1},
        b"\x01\x02\x03\x04",
    )
    assert await read_event(reader_of(b"")) is None


@pytest.mark.parametrize(
    ("raw", "fatal"),
    [
        (b"hello\n", False),
        (b"{not json}\n", False),
        (b'{"data": {}}\n', False),
        (b'{"type": "x", "payload_length": -1}\n', True),
        (b'{"type": "x", "payload_length": 99999999999}\n', True),
        (b'{"type": "x", "payload_length": 10}\nabc', True),  # closed mid-event
    ],
)
async def test_faults_say_whether_the_framing_survives(raw: bytes, fatal: bool) -> None:
    with pytest.raises(ProtocolError) as info:
        await read_event(reader_of(raw))
    assert info.value.fatal is fatal


def test_fields_that_do_not_fit_their_event() -> None:
    assert parse(AudioStart, AudioStart(rate=16000, width=2, channels=1).event()).rate == 16000
    with pytest.raises(MalformedEvent, match="'rate' must be an integer"):
        parse(AudioStart, Event("audio-start", {"rate": "fast", "width": 2, "channels": 1}))
    with pytest.raises(MalformedEvent):
        parse(AudioStart, Event("audio-start", {"rate": 16000}))
    with pytest.raises(MalformedEvent, match="'transcript_names' must be a list"):
        parse(Transcribe, Event("transcribe", {"transcript_names": 7}))


async def test_live_text_is_off_with_the_flag_and_speakers_count_until_the_end() -> None:
    from wyoming_whisper.request import build_request
    from wyoming_whisper.streaming import Stream

    async def told(partial: object) -> None:
        pass

    for flag, live in ((False, True), (True, False)):
        engine = engine_with(FakeBackend(), no_live_text=flag)
        stream = Stream.open(engine, build_request(engine, model=None), on_partial=told)
        assert (stream.on_partial is not None) is live
        stream.received.tracker.speech_start = 0  # the VAD heard the speaker
        assert engine.speakers == 1
        await stream.close()
        assert engine.speakers == 0 and not engine.streams


def test_read_file_reads_what_faster_whisper_reads() -> None:
    """Uploads are decoded without faster-whisper's full garbage collection per file, to the
    same samples as its ``decode_audio``, bit for bit, in every container the tests carry."""
    from faster_whisper.audio import decode_audio

    from wyoming_whisper.audio import read_file

    from .harness import REPO

    files = sorted(
        p
        for p in (REPO / "tests" / "data").rglob("*")
        if p.suffix in {".wav", ".flac", ".mp3", ".ogg"}
    )
    assert len({p.suffix for p in files}) == 4, files
    for path in files:
        got, want = read_file(str(path)), decode_audio(str(path))
        assert got.dtype == np.float32 and np.array_equal(got, want), path


@pytest.mark.parametrize("rate", [16000, 24000, 44100, 8000])
def test_a_stream_gives_the_samples_of_an_upload_of_the_same_pcm(rate: int) -> None:
    """Streamed PCM, resampled chunk by chunk, is rounded to 16 bits as an upload is, so the
    Realtime API's 24 kHz audio and a WAV of it decode to the same transcript."""
    import io

    from wyoming_whisper.audio import PcmConverter, read_file

    from .harness import clip
    from .http_helpers import wav_bytes
    from .wyoming_client import load_pcm16

    pcm = load_pcm16(clip("deepspeech/LDC93S1.wav"), rate=rate)
    step = 2 * (rate // 10)  # 100 ms appends, as the Realtime test sends
    converter = PcmConverter(rate, 2, 1)
    pieces = [converter.feed(pcm[i : i + step]) for i in range(0, len(pcm), step)]
    streamed = np.concatenate([*pieces, converter.flush()])
    uploaded = read_file(io.BytesIO(wav_bytes(pcm, rate)))  # type: ignore[arg-type]
    assert streamed.dtype == np.float32 and np.array_equal(streamed, uploaded)


def test_names_prompt_keeps_whole_names_in_order_within_the_budget() -> None:
    def cost(text: str) -> int:  # a token per word
        return len(text.split())

    names = ("Kitchen light", " ", "Zorblax", "Garden gnome fountain", "Attic")
    assert names_prompt(names, cost, budget=100) == (
        "Kitchen light, Zorblax, Garden gnome fountain, Attic."
    )
    # 2 + (1 + 1) + (1 + 3) = 8 tokens with the commas, and one for the full stop; at 8, the
    # third name does not fit and the shorter one after it does not jump the queue.
    assert names_prompt(names, cost, budget=9) == "Kitchen light, Zorblax, Garden gnome fountain."
    assert names_prompt(names, cost, budget=8) == "Kitchen light, Zorblax."
    assert names_prompt(names, cost, budget=2) is None
    assert names_prompt((), cost) is None


def test_an_english_only_model_is_always_told_english() -> None:
    assert decoding_language("de", multilingual=False) == "en"
    assert decoding_language(None, multilingual=False) == "en"
    assert decoding_language("de", multilingual=True) == "de"
    assert decoding_language(None, multilingual=True) is None
