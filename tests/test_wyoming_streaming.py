"""Wyoming transcript streaming and --vad-endpointing, with the wyoming library's client: live
text and chunks on the real server, the VAD's endpoints on the server in process (the real VAD,
a fake model: tests/inprocess.py)."""

from __future__ import annotations

from difflib import SequenceMatcher

import numpy as np
from wyoming.asr import Transcribe, Transcript, TranscriptChunk
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.ping import Ping

from .harness import ServerProcess, clip, words
from .inprocess import serving
from .wyoming_client import load_pcm16, read_until, send_audio, stream_paced


async def describe(port: int) -> Info:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        event = (await read_until(client, "info"))[-1]
    return Info.from_event(event)


async def test_info_advertises_streaming(server: ServerProcess) -> None:
    program = (await describe(server.wyoming_port)).asr[0]
    assert program.supports_transcript_streaming is True
    assert program.requires_external_vad is True  # no --vad-endpointing here


async def test_events_in_order_and_chunks_join_to_the_transcript(server: ServerProcess) -> None:
    # Two sentences with a pause between them: several segments, so several chunks.
    gap = np.zeros(16000, dtype="<i2").tobytes()
    pcm = load_pcm16(clip("whisper_cpp/jfk.wav")) + gap + load_pcm16(clip("deepspeech/LDC93S1.wav"))
    async with AsyncTcpClient("127.0.0.1", server.wyoming_port) as client:
        await send_audio(client, pcm)
        events = await read_until(client, "transcript-stop")
    types = [e.type for e in events]
    assert types[0] == "transcript-start", types
    assert types[-2:] == ["transcript", "transcript-stop"], types
    assert set(types[1:-2]) == {"transcript-chunk"}, types
    chunks = [TranscriptChunk.from_event(e).text for e in events[1:-2]]
    transcript = Transcript.from_event(events[-2])
    assert chunks and "".join(chunks) == transcript.text
    assert transcript.language == "en"
    got = words(transcript.text)
    assert got[:4] == ["and", "so", "my", "fellow"] and "greasy" in got, transcript.text

    # A client that reads only up to `transcript` gets the same text (the plain transcript).
    async with AsyncTcpClient("127.0.0.1", server.wyoming_port) as client:
        await send_audio(client, pcm)
        plain = (await read_until(client, "transcript"))[-1]
    assert plain.data["text"] == transcript.text


async def test_confirmed_words_arrive_while_the_speaker_talks(server: ServerProcess) -> None:
    """Live text: transcript-start as speech starts, confirmed words as chunks during speech,
    the rest after audio-stop; the chunks join to the transcript's words."""
    pcm = load_pcm16(clip("whisper_cpp/jfk.wav")) + np.zeros(11200, dtype="<i2").tobytes()
    async with AsyncTcpClient("127.0.0.1", server.wyoming_port) as client:
        events, stopped = await stream_paced(client, pcm)
    types = [e.type for _, e in events]
    assert types[0] == "transcript-start" and types[-2:] == ["transcript", "transcript-stop"]
    assert set(types[1:-2]) == {"transcript-chunk"}, types
    assert events[0][0] < 1.5, "transcript-start waits for the end of the audio"
    chunks = [(t, TranscriptChunk.from_event(e).text) for t, e in events[1:-2]]
    live = [text for t, text in chunks if t < stopped]
    assert len(live) >= 3, f"too few chunks during speech: {chunks}"
    assert chunks[0][0] < 3.0, f"first confirmed words late: {chunks}"  # speech starts at 0.3 s
    transcript = Transcript.from_event(events[-2][1]).text
    # The final is authoritative; what was confirmed stands, so the two may differ in a word.
    joined = words("".join(text for _, text in chunks))
    assert SequenceMatcher(None, joined, words(transcript)).ratio() > 0.9, (chunks, transcript)
    assert words(transcript)[:4] == ["and", "so", "my", "fellow"], transcript


def holds(audio: np.ndarray, pcm: bytes) -> bool:
    """Whether decoded ``audio`` holds the speech of ``pcm`` (16-bit mono at 16 kHz): a piece
    from a quarter and one from three quarters in, sample for sample."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    windows = np.lib.stride_tricks.sliding_window_view(audio, 256)
    return all(
        bool(np.any(np.all(windows == samples[at : at + 256], axis=1)))
        for at in (len(samples) // 4, 3 * len(samples) // 4)
    )


async def test_vad_endpointing() -> None:
    """The server's VAD ends each utterance (in process: the real Silero VAD, a fake model; each
    final shown to decode exactly its own command's audio)."""
    async with serving("-m", "tiny.en", "--preload", "--vad-endpointing") as srv:
        program = (await describe(srv.wyoming_port)).asr[0]
        assert program.requires_external_vad is False

        silence = np.zeros(int(1.5 * 16000), dtype="<i2").tobytes()
        first = load_pcm16(clip("deepspeech/LDC93S1.wav"))
        second = load_pcm16(clip("speech_recognition/english.wav"))
        srv.backend.segments = (" An answer.",)

        def finals() -> list[np.ndarray]:
            return [d.audio for d in srv.backend.decodes if not d.cancel.speculative]  # type: ignore[union-attr]

        async with AsyncTcpClient("127.0.0.1", srv.wyoming_port) as client:
            await client.write_event(Transcribe().event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            # Two commands, no audio-stop: the server ends each one on its own VAD.
            for n, pcm in enumerate((silence + first + silence, second + silence), 1):
                for i in range(0, len(pcm), 3200):
                    chunk = AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i : i + 3200])
                    await client.write_event(chunk.event())
                events = await read_until(client, "transcript-stop", timeout=60)
                assert [e.type for e in events][-2:] == ["transcript", "transcript-stop"]
                assert next(e for e in events if e.type == "transcript").data["text"] == (
                    "An answer."
                )
                assert len(finals()) == n
            one, two = finals()
            assert holds(one, first) and not holds(one, second)
            assert holds(two, second) and not holds(two, first)
            # audio-stop after an answered utterance is ignored (nothing new was said) ...
            await client.write_event(AudioStop().event())
            await client.write_event(Ping(text="after").event())
            after = await read_until(client, "pong", timeout=30)
            assert [e.type for e in after] == ["pong"], after
            assert len(finals()) == 2
            # ... and the connection takes the next utterance the classic way.
            await send_audio(client, first)
            events = await read_until(client, "transcript", timeout=60)
        assert events[-1].data["text"] == "An answer."
        assert len(finals()) == 3 and holds(finals()[2], first)


async def test_no_endpointing_without_the_flag(server: ServerProcess) -> None:
    """Without --vad-endpointing, silence never ends the utterance: only audio-stop does."""
    silence = np.zeros(int(1.5 * 16000), dtype="<i2").tobytes()
    pcm = load_pcm16(clip("deepspeech/LDC93S1.wav")) + silence
    async with AsyncTcpClient("127.0.0.1", server.wyoming_port) as client:
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm).event())
        await client.write_event(Ping(text="x").event())
        # The evidence: the server decides an endpoint while it handles the chunk (nothing ends
        # an utterance on a timer), and answers events in order, so the pong comes after that
        # decision; a transcript before it would be an endpoint on the 1.5 s of silence.
        assert [e.type for e in await read_until(client, "pong")] == ["pong"]
        await client.write_event(AudioStop().event())
        events = await read_until(client, "transcript")
    assert "greasy" in words(events[-1].data["text"])
