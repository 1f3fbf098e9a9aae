"""The Wyoming front door, driven by the wyoming library's own client: transcripts from the real
server; describe and the protocol's faults on the server in process (tests/inprocess.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info

from wyoming_whisper.backends.encoder_window import said_twice

from .harness import ServerProcess, clip, eventually_async, words
from .http_helpers import metrics
from .inprocess import InProcess, serving
from .wyoming_client import load_pcm16, read_until, send_audio, transcribe

JFK = "whisper_cpp/jfk.wav"
REWRITTEN = ("whisper_assist_commands_total", (("outcome", "rewritten"),))
JFK_WORDS = words("And so my fellow Americans ask not what your country can do for you")


def assert_jfk(text: str) -> None:
    got = words(text)
    assert got[:4] == ["and", "so", "my", "fellow"], text
    assert "country" in got and got[-1] == "country", text


@pytest.fixture(scope="module")
def jfk_pcm() -> bytes:
    return load_pcm16(clip(JFK))


async def test_describe_lists_every_model() -> None:
    async with (
        serving("-m", "tiny.en", "-m", "base") as srv,
        AsyncTcpClient("127.0.0.1", srv.wyoming_port) as client,
    ):
        await client.write_event(Describe().event())
        event = (await read_until(client, "info"))[-1]
    info = Info.from_event(event)
    assert len(info.asr) == 1
    program = info.asr[0]
    assert program.installed and program.version
    assert [m.name for m in program.models] == ["tiny.en", "base"]
    tiny, base = program.models
    assert tiny.languages == ["en"]
    assert "de" in base.languages and "en" in base.languages
    assert all(m.attribution.name == "OpenAI" and m.installed for m in program.models)


@pytest.mark.smoke
async def test_16k_mono(server: ServerProcess, jfk_pcm: bytes) -> None:
    event = await transcribe("127.0.0.1", server.wyoming_port, jfk_pcm)
    assert event.type == "transcript", event.data
    assert_jfk(event.data["text"])
    assert event.data["language"] == "en"


async def test_44k_stereo(server: ServerProcess) -> None:
    pcm = load_pcm16(clip(JFK), rate=44100, channels=2)
    event = await transcribe("127.0.0.1", server.wyoming_port, pcm, rate=44100, width=2, channels=2)
    assert event.type == "transcript", event.data
    assert_jfk(event.data["text"])


async def test_chunks_may_change_format_mid_stream(server: ServerProcess) -> None:
    """Each chunk names its format: audio-start says 16 kHz mono, the second half is 44.1 kHz
    stereo, and the whole sentence still comes out (as the wyoming library converts per chunk)."""
    mono = load_pcm16(clip(JFK))
    stereo = load_pcm16(clip(JFK), rate=44100, channels=2)
    half_mono = len(mono) // 2 // 2 * 2
    half_stereo = len(stereo) // 2 // 4 * 4  # the same instant, on a whole stereo frame
    client = AsyncTcpClient("127.0.0.1", server.wyoming_port)
    await client.connect()
    try:
        await client.write_event(Transcribe().event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for i in range(0, half_mono, 4096):
            chunk = AudioChunk(16000, 2, 1, mono[i : min(i + 4096, half_mono)])
            await client.write_event(chunk.event())
        for i in range(half_stereo, len(stereo), 8192):
            chunk = AudioChunk(44100, 2, 2, stereo[i : i + 8192])
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        event = (await read_until(client, "transcript"))[-1]
    finally:
        await client.disconnect()
    assert event.type == "transcript", event.data
    assert_jfk(event.data["text"])


async def test_8k_and_32bit(server: ServerProcess) -> None:
    pcm16 = np.frombuffer(load_pcm16(clip(JFK), rate=8000), dtype="<i2")
    pcm32 = (pcm16.astype("<i4") << 16).tobytes()
    event = await transcribe("127.0.0.1", server.wyoming_port, pcm32, rate=8000, width=4)
    assert event.type == "transcript", event.data
    assert "country" in words(event.data["text"])


async def test_two_utterances_on_one_connection(server: ServerProcess, jfk_pcm: bytes) -> None:
    other = load_pcm16(clip("speech_recognition/english.wav"))
    async with AsyncTcpClient("127.0.0.1", server.wyoming_port) as client:
        await send_audio(client, jfk_pcm)
        first = (await read_until(client, "transcript"))[-1]
        await send_audio(client, other)
        second = (await read_until(client, "transcript"))[-1]
    assert_jfk(first.data["text"])
    assert second.type == "transcript" and second.data["text"]
    assert "country" not in words(second.data["text"])


async def test_four_clients_at_once(server: ServerProcess, jfk_pcm: bytes) -> None:
    results = await asyncio.gather(
        *(transcribe("127.0.0.1", server.wyoming_port, jfk_pcm) for _ in range(4))
    )
    for event in results:
        assert event.type == "transcript", event.data
        assert_jfk(event.data["text"])


async def test_name_picks_the_model(server: ServerProcess) -> None:
    """base is multilingual: German speech comes back in German with language 'de'."""
    pcm = load_pcm16(clip("picovoice_leopard/test_de.wav"))
    event = await transcribe(
        "127.0.0.1", server.wyoming_port, pcm, transcribe=Transcribe(name="base")
    )
    assert event.type == "transcript", event.data
    assert event.data["language"] == "de"
    # tiny.en (the default) cannot answer in German.
    default = await transcribe("127.0.0.1", server.wyoming_port, pcm)
    assert default.data["language"] == "en"
    assert default.data["text"] != event.data["text"]


async def test_language_is_honoured(server: ServerProcess) -> None:
    pcm = load_pcm16(clip("picovoice_leopard/test_de.wav"))
    event = await transcribe(
        "127.0.0.1",
        server.wyoming_port,
        pcm,
        transcribe=Transcribe(name="base", language="de-DE"),
    )
    assert event.type == "transcript" and event.data["language"] == "de"


# -- protocol faults, on the server in process over a fake model (tests/inprocess.py) ----------

FAKE_JFK = (
    " And so, my fellow Americans, ask not what your country can do for you,"
    " ask what you can do for your country."
)


@contextlib.asynccontextmanager
async def fake_server() -> AsyncIterator[InProcess]:
    """The server in process, its fake model answering with the JFK clip's words."""
    async with serving() as srv:
        srv.backend.text = FAKE_JFK
        yield srv


async def served(srv: InProcess, pcm: bytes) -> None:
    """A request after a fault is answered, its audio decoded (all but the silence trimmed after
    its speech)."""
    before = len(srv.backend.decodes)
    event = await transcribe("127.0.0.1", srv.wyoming_port, pcm)
    assert event.type == "transcript", event
    assert_jfk(event.data["text"])
    finals = [d for d in srv.backend.decodes[before:] if not d.cancel or not d.cancel.speculative]
    assert len(finals) == 1 and len(pcm) / 32000 - 0.5 < finals[0].seconds <= len(pcm) / 32000


async def test_unknown_model_then_next_request(jfk_pcm: bytes) -> None:
    async with fake_server() as srv:
        async with AsyncTcpClient("127.0.0.1", srv.wyoming_port) as client:
            await send_audio(client, jfk_pcm[:32000], transcribe=Transcribe(name="nope-model"))
            error = (await read_until(client, "error"))[-1]
            assert error.type == "error" and "nope-model" in error.data["text"]
            assert (error.data["code"], error.data["param"]) == ("model_not_found", "model")
            # The failed exchange ends with the connection, as Home Assistant needs to stop
            # waiting.
            assert await asyncio.wait_for(client.read_event(), 10) is None
        assert srv.backend.decodes == []
        await served(srv, jfk_pcm)


async def test_new_transcribe_after_an_early_error(jfk_pcm: bytes) -> None:
    """An error before audio-stop leaves the connection usable for a fresh request."""
    async with fake_server() as srv:
        async with AsyncTcpClient("127.0.0.1", srv.wyoming_port) as client:
            await client.write_event(Transcribe(name="nope-model").event())
            error = (await read_until(client, "error"))[-1]
            assert error.type == "error" and "nope-model" in error.data["text"]
            await send_audio(client, jfk_pcm, transcribe=Transcribe(name="base"))
            event = (await read_until(client, "transcript"))[-1]
        assert_jfk(event.data["text"])
        assert {d.model for d in srv.backend.decodes} == {"base"}


async def test_unknown_language_is_an_error(jfk_pcm: bytes) -> None:
    async with fake_server() as srv, AsyncTcpClient("127.0.0.1", srv.wyoming_port) as client:
        await send_audio(client, jfk_pcm[:3200], transcribe=Transcribe(language="klingon"))
        error = (await read_until(client, "error"))[-1]
    assert error.type == "error" and "klingon" in error.data["text"]
    assert (error.data["code"], error.data["param"]) == ("unsupported_language", "language")


@pytest.mark.parametrize(
    "garbage",
    [
        b"this is not json\n",
        b"\x00\xff\xfe garbage \x01\n",
        b'{"type": "audio-chunk", "payload_length": -5}\n',
        b'{"type": "audio-chunk", "payload_length": 999999999999}\n',
        b'{"data": {}}\n',
        b"[1, 2, 3]\n",
        b'{"type": "describe", "data": ' + b"[" * 30000 + b"]" * 30000 + b"}\n",  # too deep
        b"x" * 70000 + b"\n",
        b"\x00\x01 binary garbage and no end of line",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
async def test_garbage_gets_an_error_and_server_goes_on(jfk_pcm: bytes, garbage: bytes) -> None:
    async with fake_server() as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.wyoming_port)
        writer.write(garbage)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
        assert b'"type": "error"' in line or b'"type":"error"' in line, line
        writer.close()
        await served(srv, jfk_pcm)


async def test_chunk_without_start_and_stop_without_audio(jfk_pcm: bytes) -> None:
    async with fake_server() as srv:
        async with AsyncTcpClient("127.0.0.1", srv.wyoming_port) as client:
            await client.write_event(AudioStop().event())
            error = (await read_until(client, "error"))[-1]
            assert error.type == "error"
            assert await asyncio.wait_for(client.read_event(), 10) is None
        async with AsyncTcpClient("127.0.0.1", srv.wyoming_port) as client:
            # audio-chunk without audio-start: the chunk's own format is used.
            for i in range(0, len(jfk_pcm), 8000):
                chunk = AudioChunk(rate=16000, width=2, channels=1, audio=jfk_pcm[i : i + 8000])
                await client.write_event(chunk.event())
            await client.write_event(AudioStop().event())
            event = (await read_until(client, "transcript"))[-1]
        assert_jfk(event.data["text"])
        final = srv.backend.decodes[-1]
        sent = np.frombuffer(jfk_pcm, dtype="<i2").astype(np.float32) / 32768
        assert len(sent) - 8000 < len(final.audio) <= len(sent)  # (the trailing silence trimmed)
        assert np.allclose(final.audio, sent[: len(final.audio)], atol=1e-4)


async def test_bad_audio_format_is_an_error(jfk_pcm: bytes) -> None:
    async with fake_server() as srv:
        async with AsyncTcpClient("127.0.0.1", srv.wyoming_port) as client:
            await client.write_event(Transcribe().event())
            await client.write_event(AudioStart(rate=16000, width=7, channels=1).event())
            error = (await read_until(client, "error"))[-1]
            assert error.type == "error" and "width" in error.data["text"]
            await client.write_event(AudioStop().event())
            assert await asyncio.wait_for(client.read_event(), 10) is None
        assert srv.backend.decodes == []
        await served(srv, jfk_pcm)


@pytest.mark.parametrize("kind", ["silence", "noise"])
async def test_silence_and_noise_give_empty_transcripts(server: ServerProcess, kind: str) -> None:
    rng = np.random.default_rng(7)
    samples = np.zeros(16000 * 4) if kind == "silence" else rng.normal(0, 0.1, 16000 * 4)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    event = await transcribe("127.0.0.1", server.wyoming_port, pcm)
    assert event.type == "transcript", event.data
    assert event.data["text"] == ""


@pytest.fixture(scope="module")
def made_up_name() -> tuple[str, Path]:
    """A spoken command naming a room that does not exist in any dictionary (espeak-ng, once)."""
    return "Brindlethorpe", clip("espeak/brindlethorpe.flac")


async def test_a_command_with_home_assistants_names_is_not_said_twice(
    server: ServerProcess,
) -> None:
    """tests/data/names/08.flac ("Turn on the Zephyrine heater", 1.96 s) with every name Home
    Assistant exposes in the tests as hotwords: tiny.en said "Turn on the Maffering Keaker, Tarn
    on the Maffering Keaker" in the fitted 10 s encoder window, and Home Assistant refused the
    command. The encoder window's guard takes a phrase said twice for a loop (the 30 s window
    gives the command once). Sent as Home Assistant sends it: the command, then 1 s of silence."""
    from .data.names.build import AREAS, ENTITIES

    pcm = load_pcm16(clip("names/08.flac")) + bytes(2 * 16000)
    names = [*ENTITIES, *AREAS, "Den", "Mezzanine"]  # as hass_names ranks them: alias, floor
    event = await transcribe(
        "127.0.0.1",
        server.wyoming_port,
        pcm,
        transcribe=Transcribe(name="tiny.en", transcript_names=names),
    )
    text = event.data["text"]
    assert words(text)[:2] == ["turn", "on"] and not said_twice(text), text


async def test_transcript_names_bias_the_decoding(
    server: ServerProcess, made_up_name: tuple[str, Path]
) -> None:
    name, path = made_up_name
    pcm = load_pcm16(path)
    plain = await transcribe("127.0.0.1", server.wyoming_port, pcm)
    assert name.lower() not in plain.data["text"].lower(), "tiny.en knows the name unaided"
    biased = await transcribe(
        "127.0.0.1",
        server.wyoming_port,
        pcm,
        transcribe=Transcribe(
            transcript_names=[name, "Kitchen Light"], transcript_terms=["thermostat", "garage"]
        ),
    )
    assert name.lower() in biased.data["text"].lower(), biased.data


async def test_the_audio_chooses_the_command_it_says(server: ServerProcess) -> None:
    """tests/data/assist/command-011.flac ("Turn on Lumisette", espeak-ng): tiny.en, with the
    names as transcript_names, hears "Turn on new my set". No name is near enough in letters to
    rewrite it by the words alone; among the commands near it, Whisper's decoder forced through
    each finds "Turn on Lumisette" in the audio (commands/matcher.py, ``choose``). The first request
    starts loading Home Assistant's sentences and is answered as heard (never delayed)."""
    from .data.assist.build import AREAS, ENTITIES, FLOORS

    names = [n for n, *_ in ENTITIES.values()] + [a for e in ENTITIES.values() for a in e[2]]
    names += [*AREAS, *(a for _, aliases in AREAS.values() for a in aliases), *FLOORS]
    pcm = load_pcm16(clip("assist/command-011.flac"))
    ask = Transcribe(name="tiny.en", transcript_names=names)

    def rewritten() -> float:
        return metrics(server.url).get(REWRITTEN, 0.0)

    async def rewritten_once() -> tuple[Event, float]:
        before = rewritten()
        event = await transcribe("127.0.0.1", server.wyoming_port, pcm, transcribe=ask)
        # (not "command": tiny.en did not hear "Lumisette" itself)
        assert rewritten() > before, event.data
        return event, before

    # Until the sentences are loaded (3 s on an idle core).
    event, before = await eventually_async(
        rewritten_once, 30, interval=0.5, what="Home Assistant's sentences loaded"
    )
    assert event.data["text"] == "Turn on Lumisette.", event.data
    assert rewritten() == before + 1
