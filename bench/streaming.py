"""Live text over Wyoming: confirmed words while the speaker talks, and what they cost at the end.

Starts two servers on one model (loopback, free ports, zeroconf off): one with live text (the
default) and one with ``--no-live-text`` (chunks only with the final); part 3 adds a second
``--no-live-text`` server. Four parts:

1. Command-length clips: the English clips of the shared manifest under 5 s that have a reference,
   converted to 16 kHz mono 16-bit WAV. Every measurement is the external ``wyoming-bench``
   package's own (``wyoming_bench.stt.client.measure_stt_once``, what its ``stt`` command runs per
   sample; its ``summarize_stt_mode`` gives the percentiles and the pooled WER): streaming mode
   (``--chunk-samples`` per chunk, ``--chunk-delay`` between them, ``--trailing-silence`` appended)
   against both servers, non-streaming against the live-text one; the three cases interleaved
   sample by sample. TTFT is its time from sending ``transcribe`` to the first
   ``transcript-chunk``, Total to ``transcript-stop`` (streaming: it includes sending the audio
   in real time). The raw library is timed on the same audio in the same run (``WhisperModel.
   transcribe``, beam 5, VAD filter on, int8 on CPU, as bench/latency.py) and each Total mean is
   printed as a ratio to its mean decode time.
   Checks: streaming TTFT p95 <= 2.0 s with live text; streaming Total mean with live text at
   most 50 ms above ``--no-live-text``; streaming WER <= non-streaming WER.
2. Long clips (10-30 s, English): streamed in real time with the ``wyoming`` library's client;
   every ``transcript-chunk`` that arrives before ``audio-stop`` is timed. Prints the time from
   the start of speech (the first speech timestamp of Silero VAD, ``faster_whisper.vad.
   get_speech_timestamps`` with its default options but no padding) to the first chunk;
   check: median <= 2.0 s
   (a clip with no chunk before audio-stop counts as never).
3. Load: 4 Wyoming clients streaming commands in real time and 4 HTTP uploads (POST
   /v1/audio/transcriptions) started at once; each round sends the same requests to three
   servers in turn (order rotated and reversed, ``--load-rounds`` rounds): live text, without
   it, and without it again, an A/A control. Final latency: Wyoming audio-stop -> transcript,
   HTTP request -> response. The few finals that queue behind another stream's decode make a
   p95 of tens of requests jump between runs: two identical servers differed by 5 vs 180 ms
   (base, 12 rounds), so the A/A pair measures that noise in the same run. Printed: mean, p95
   and max per server, and each server's difference to the first server without live text,
   paired request by request, with a 95 % interval from resampling rounds. Check: with live
   text, neither the mean nor the p95 of either door is later than the later of the two servers
   without it by more than ``--tolerance`` (5 %) + ``--tolerance-ms`` (20 ms).

4. Realtime API: each command clip, at 24 kHz, appended in 100 ms pieces paced in real time
   to ``/v1/realtime?intent=transcription`` (server VAD, its default 500 ms of silence), then
   a second of silence; the time from ``input_audio_buffer.speech_stopped`` to
   ``conversation.item.input_audio_transcription.completed``. Check: median <= 100 ms.

Exits 1 when a check fails or a request gets no answer, 2 when there are no clips or a server
does not start (``--off-args`` / ``--live-args`` replace the servers' extra flags).

Run: ``python bench/streaming.py [--model tiny.en] [--rounds N] [--audio-dir ../shared/audio]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import shlex
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import numpy as np  # noqa: E402
from wyoming.asr import Transcribe, Transcript  # noqa: E402
from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming_bench import __version__ as WYOMING_BENCH_VERSION  # noqa: E402
from wyoming_bench.const import MODE_NON_STREAMING, MODE_STREAMING  # noqa: E402
from wyoming_bench.stt.client import measure_stt_once  # noqa: E402
from wyoming_bench.stt.corpus import AudioInput, load_corpus  # noqa: E402
from wyoming_bench.stt.reporting import SttMeasurement, summarize_stt_mode  # noqa: E402

from bench.stats import percentile  # noqa: E402
from tests.harness import AUDIO_DIR, Clip, ServerProcess, load_manifest  # noqa: E402
from tests.http_helpers import REALTIME_SESSION  # noqa: E402
from wyoming_whisper.audio import read_file  # noqa: E402

RATE = 16000
COMMAND_MAX_SECONDS = 5.0  # shorter than this: a voice command
LONG_SECONDS = (10.0, 30.0)
TTFT_GOAL = 2.0  # seconds
TOTAL_MARGIN = 0.050  # live text may cost at most this much on the streaming Total mean
LOAD_CLIENTS = 4  # per door


@dataclass
class Case:
    """One wyoming-bench case of part 1: a server and a mode."""

    label: str
    server: ServerProcess
    mode: str
    measurements: list[SttMeasurement] = field(default_factory=list)


@dataclass
class Streamed:
    """One utterance streamed in real time; times in seconds from the first audio-chunk."""

    chunks: list[float] = field(default_factory=list)  # transcript-chunks before audio-stop
    stop: float = math.nan  # audio-stop sent
    final: float = math.nan  # audio-stop -> transcript
    text: str = ""
    error: str = ""


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:.0f} ms"


def ms_signed(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:+.0f} ms"


def pct(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.1f}%"


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def floats(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def stem(relpath: str, taken: set[str]) -> str:
    """A flat file name for a manifest path (two containers of one recording stay apart)."""
    base, _, ext = relpath.replace("/", "__").rpartition(".")
    name = base if base not in taken else f"{base}_{ext}"
    taken.add(name)
    return name


def write_corpus(clips: list[Clip], audio_dir: Path, directory: Path) -> None:
    """``<stem>.wav`` (16 kHz mono 16-bit) + ``<stem>.txt`` per clip: wyoming-bench's corpus."""
    taken: set[str] = set()
    for clip in clips:
        name = stem(clip.path.relative_to(audio_dir).as_posix(), taken)
        with wave.open(str(directory / f"{name}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(pcm16(read_file(str(clip.path))))
        (directory / f"{name}.txt").write_text(clip.reference + "\n", encoding="utf-8")


class RawLibrary:
    """faster-whisper itself, with bench/latency.py's settings: the yardstick for speed."""

    def __init__(self, model: str) -> None:
        from faster_whisper import WhisperModel

        from wyoming_whisper.backends.ctranslate2_models import resolve

        self.model = WhisperModel(resolve(model), device="cpu", compute_type="int8")
        self.times: list[float] = []

    def decode(self, pcm: bytes) -> float:
        samples = floats(pcm)
        started = time.perf_counter()
        segments, _ = self.model.transcribe(samples, beam_size=5, vad_filter=True)
        list(segments)  # the segments are lazy: decoding happens here
        return time.perf_counter() - started


# --- 1. command-length clips through wyoming-bench ------------------------------------------------


async def measure(case: Case, sample: AudioInput, args: argparse.Namespace) -> SttMeasurement:
    """One wyoming-bench measurement, exactly as its ``stt`` command makes it."""
    return await measure_stt_once(
        "127.0.0.1",
        case.server.wyoming_port,
        case.mode,
        sample,
        Transcribe(),  # the tool's default --config '{}'
        args.chunk_samples,
        args.timeout,
        args.timeout,
        args.chunk_delay,
        args.trailing_silence,
    )


def bench_commands(
    cases: list[Case], samples: list[AudioInput], raw: RawLibrary, args: argparse.Namespace
) -> None:
    """Warm-up, then ``--rounds`` x samples x cases (order rotated per sample), then the raw
    library on every sample of the round."""
    for case in cases:  # untimed, like the tool's --warmup 1
        asyncio.run(measure(case, samples[0], args))
    raw.decode(samples[0].pcm)
    for round_no in range(args.rounds):
        for i, sample in enumerate(samples):
            k = (round_no * len(samples) + i) % len(cases)
            for case in cases[k:] + cases[:k]:
                m = asyncio.run(measure(case, sample, args))
                case.measurements.append(m)
                if args.verbose:
                    status = (
                        f"ttft {ms(m.ttft_s)} total {ms(m.total_s)} chunks "
                        f"{m.n_transcript_chunks} {m.hypothesis!r}"
                        if m.ok
                        else f"FAIL {m.error}"
                    )
                    print(f"  [{case.label}] {m.sample_id}: {status}", flush=True)
        for sample in samples:
            raw.times.append(raw.decode(sample.pcm))


def report_commands(
    cases: list[Case], samples: list[AudioInput], raw: RawLibrary, args: argparse.Namespace
) -> list[tuple[str, bool, str]]:
    audio = sum(s.duration_s for s in samples)
    print(
        f"== 1. command-length clips: {len(samples)} English clips under "
        f"{COMMAND_MAX_SECONDS:g} s ({audio:.1f} s of audio), {args.rounds} round(s); "
        f"wyoming-bench {WYOMING_BENCH_VERSION} measure_stt_once, {args.chunk_samples}-sample "
        f"chunks every {args.chunk_delay:g} s, {args.trailing_silence:g} s trailing silence"
    )
    raw_mean = statistics.fmean(raw.times)
    summaries: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    for case in cases:
        s = summaries[case.label] = summarize_stt_mode(case.measurements, case.mode)
        ok = [m for m in case.measurements if m.ok]
        chunks = statistics.fmean(m.n_transcript_chunks for m in ok) if ok else math.nan
        total_mean = s["total"]["mean"]
        ratio = f"{total_mean / raw_mean:.2f}" if total_mean is not None else "n/a"
        print(
            f"{case.label}: ok {s['ok']}/{s['ok'] + s['fail']}; "
            f"TTFT p50 {ms(s['ttft']['median'])}, p95 {ms(s['ttft']['p95'])}; "
            f"Total mean {ms(total_mean)}, p50 {ms(s['total']['median'])}, "
            f"p95 {ms(s['total']['p95'])}; WER {pct(s['wer'])}; "
            f"chunks per answer {chunks:.1f}; Total mean / raw {ratio}"
        )
        failures += [
            f"{case.label} {m.sample_id}: {m.error}" for m in case.measurements if not m.ok
        ]
    wire = statistics.fmean(s.duration_s for s in samples) + args.trailing_silence
    print(
        f"raw faster-whisper transcribe (beam 5, vad_filter, int8 CPU): mean {ms(raw_mean)} over "
        f"{len(raw.times)} decodes (streaming Totals include about {wire:.2f} s of audio sent "
        "in real time)"
    )
    for failure in failures:
        print(f"  failed: {failure}")

    live, off, whole = (summaries[c.label] for c in cases)
    ttft_p95 = live["ttft"]["p95"]
    live_total, off_total = live["total"]["mean"], off["total"]["mean"]
    checks = [
        (
            f"TTFT p95 <= {TTFT_GOAL:g} s",
            ttft_p95 is not None and ttft_p95 <= TTFT_GOAL,
            f"{ms(ttft_p95)} ({cases[0].label})",
        ),
    ]
    if live_total is not None and off_total is not None:
        diff = live_total - off_total
        checks.append(
            (
                f"Total mean live - off <= {TOTAL_MARGIN * 1000:.0f} ms",
                diff <= TOTAL_MARGIN,
                f"{diff * 1000:+.0f} ms ({ms(live_total)} vs {ms(off_total)})",
            )
        )
    else:
        checks.append((f"Total mean live - off <= {TOTAL_MARGIN * 1000:.0f} ms", False, "n/a"))
    wer_s, wer_n = live["wer"], whole["wer"]
    checks.append(
        (
            "WER streaming <= WER non-streaming",
            wer_s is not None and wer_n is not None and wer_s <= wer_n,
            f"{pct(wer_s)} vs {pct(wer_n)}",
        )
    )
    checks.append(("every wyoming-bench measurement answered", not failures, f"{len(failures)}"))
    return checks


# --- our own real-time Wyoming client (parts 2 and 3) ---------------------------------------------


async def stream_realtime(port: int, pcm: bytes, args: argparse.Namespace) -> Streamed:
    """Send ``pcm`` paced to the wall clock (chunk i at i x --chunk-delay) while reading every
    answer event; audio-stop when the last chunk's slot has passed."""
    result = Streamed()
    step = args.chunk_samples * 2
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe().event())
        await client.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
        t0 = time.perf_counter()

        async def read() -> None:
            while True:
                try:
                    event = await client.read_event()
                except OSError as err:
                    result.error = f"{type(err).__name__}: {err}"
                    return
                now = time.perf_counter() - t0
                if event is None:
                    result.error = "connection closed before transcript-stop"
                    return
                if event.type == "transcript-chunk" and math.isnan(result.stop):
                    result.chunks.append(now)
                elif event.type == "transcript":
                    result.final = now - result.stop
                    result.text = Transcript.from_event(event).text
                elif event.type == "transcript-stop":
                    return
                elif event.type == "error":
                    result.error = f"error event: {event.data.get('text')}"
                    return

        reader = asyncio.create_task(read())
        try:
            n = 0
            for n, offset in enumerate(range(0, len(pcm), step), start=1):
                await asyncio.sleep(max(0.0, t0 + (n - 1) * args.chunk_delay - time.perf_counter()))
                chunk = AudioChunk(
                    rate=RATE, width=2, channels=1, audio=pcm[offset : offset + step]
                )
                await client.write_event(chunk.event())
            await asyncio.sleep(max(0.0, t0 + n * args.chunk_delay - time.perf_counter()))
            await client.write_event(AudioStop().event())
            result.stop = time.perf_counter() - t0
            await asyncio.wait_for(reader, args.timeout)
        except (OSError, TimeoutError) as err:
            result.error = result.error or f"{type(err).__name__}: {err}"
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    if not result.error and math.isnan(result.final):
        result.error = "no transcript"
    return result


def silence(seconds: float) -> bytes:
    return b"\x00\x00" * round(seconds * RATE)


# --- 2. long clips: the first confirmed words -----------------------------------------------------


def speech_start(audio: np.ndarray, **options: Any) -> float:
    """Seconds to the first speech timestamp Silero VAD gives (nan when it hears none)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    stamps = get_speech_timestamps(audio, VadOptions(**options), sampling_rate=RATE)
    return stamps[0]["start"] / RATE if stamps else math.nan


def bench_long(
    live: ServerProcess, clips: list[Clip], args: argparse.Namespace
) -> list[tuple[str, bool, str]]:
    print(
        f"== 2. long clips: {len(clips)} English clips of {LONG_SECONDS[0]:g}-{LONG_SECONDS[1]:g} s"
        f", {args.rounds} round(s), streamed in real time ({args.chunk_samples}-sample chunks "
        f"every {args.chunk_delay:g} s, chunk i sent at i x {args.chunk_delay:g} s, then "
        f"{args.trailing_silence:g} s of silence) to the live-text server"
    )
    print(
        "start of speech: the first speech timestamp of Silero VAD (faster_whisper.vad."
        "get_speech_timestamps, default options but speech_pad_ms=0: the default 400 ms of "
        "padding is for cutting audio, not where the speaker starts; the padded start is shown)"
    )
    pace = args.chunk_delay * RATE / args.chunk_samples  # wall seconds per second of audio
    delays: list[float] = []
    failures = 0
    for round_no in range(args.rounds):
        for clip in clips:
            audio = read_file(str(clip.path))
            start = speech_start(audio, speech_pad_ms=0)
            padded = speech_start(audio)
            got = asyncio.run(
                stream_realtime(
                    live.wyoming_port, pcm16(audio) + silence(args.trailing_silence), args
                )
            )
            name = f"{clip.path.parent.name}/{clip.path.name}"
            if got.error:
                failures += 1
                print(f"  r{round_no} {name}: FAILED {got.error}")
                continue
            first = got.chunks[0] - start * pace if got.chunks else math.inf
            delays.append(first)
            shown = ms(first) if got.chunks else "none before audio-stop"
            print(
                f"  r{round_no} {name} ({len(audio) / RATE:.1f} s): speech from {start:.2f} s "
                f"(padded {padded:.2f} s); first chunk {shown}; {len(got.chunks)} chunk(s) "
                f"before audio-stop; audio-stop -> transcript {ms(got.final)}"
            )
    median = statistics.median(delays) if delays else math.inf
    shown = ms(median) if math.isfinite(median) else "never (no chunk before audio-stop)"
    print(f"start of speech -> first transcript-chunk, median over clips: {shown}")
    return [
        (
            f"speech start -> first chunk median <= {TTFT_GOAL:g} s (long clips)",
            median <= TTFT_GOAL,
            shown,
        ),
        ("every long-clip stream answered", failures == 0, f"{failures} failed"),
    ]


# --- 3. load: Wyoming streams and HTTP uploads at once --------------------------------------------

AGAIN = "--no-live-text, again"  # the A/A control: a second server without live text


async def upload(session: aiohttp.ClientSession, url: str, wav: bytes) -> tuple[float, str]:
    """POST one file; (request -> response seconds, error or '')."""
    form = aiohttp.FormData()
    form.add_field("model", "whisper-1")
    form.add_field("file", wav, filename="command.wav", content_type="audio/wav")
    started = time.perf_counter()
    async with session.post(url + "/v1/audio/transcriptions", data=form) as resp:
        body = await resp.text()
    seconds = time.perf_counter() - started
    return seconds, "" if resp.status == 200 else f"HTTP {resp.status}: {body[:200]}"


async def load_round(
    server: ServerProcess, streams: list[bytes], wavs: list[bytes], args: argparse.Namespace
) -> tuple[list[float], list[str]]:
    """All clients at once; (final seconds per request slot, the streams' first, then the
    uploads', errors). A failed slot's final is NaN, so slots stay aligned across servers."""
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        results = await asyncio.gather(
            *(stream_realtime(server.wyoming_port, pcm, args) for pcm in streams),
            *(upload(session, server.url, wav) for wav in wavs),
            return_exceptions=True,
        )
    finals: list[float] = []
    errors: list[str] = []
    for result in results:
        final = math.nan
        if isinstance(result, BaseException):
            errors.append(f"{type(result).__name__}: {result}")
        elif isinstance(result, Streamed):
            if result.error:
                errors.append(f"Wyoming: {result.error}")
            else:
                final = result.final
        elif result[1]:
            errors.append(result[1])
        else:
            final = result[0]
        finals.append(final)
    return finals, errors


def rotation(labels: list[str], round_no: int) -> list[str]:
    """Round ``round_no``'s server order: rotated every round and reversed every len(labels)
    rounds, so over 2 x len(labels) rounds each server runs in each place and after each other
    server equally often (the machine's state after one server's round is the next one's)."""
    shift = round_no % len(labels)
    order = labels[shift:] + labels[:shift]
    return order[::-1] if (round_no // len(labels)) % 2 else order


def paired(
    a: np.ndarray, b: np.ndarray, stat: Any, rounds: int, draws: int = 2000
) -> tuple[float, float, float]:
    """stat(a) - stat(b) over the same requests, with a 95 % interval from resampling whole
    rounds (a round's requests share their moment); arrays are rounds x slots, NaN = failed."""
    rng = np.random.default_rng(0)

    def diff(rows: np.ndarray) -> float:
        x, y = a[rows].ravel(), b[rows].ravel()
        keep = ~(np.isnan(x) | np.isnan(y))
        return float(stat(x[keep].tolist()) - stat(y[keep].tolist())) if keep.any() else math.nan

    boot = [diff(rng.integers(0, rounds, rounds)) for _ in range(draws)]
    low, high = np.nanpercentile(boot, [2.5, 97.5])
    return diff(np.arange(rounds)), float(low), float(high)


def bench_load(
    servers: dict[str, ServerProcess], samples: list[AudioInput], args: argparse.Namespace
) -> list[tuple[str, bool, str]]:
    """``servers``: live text, without it, and without it again (the A/A control)."""
    print(
        f"== 3. load: {LOAD_CLIENTS} Wyoming clients streaming commands in real time (+ "
        f"{args.trailing_silence:g} s silence) and {LOAD_CLIENTS} HTTP uploads, started at once, "
        f"the same requests on each of {len(servers)} servers per round, "
        f"{args.load_rounds} rounds, order rotated"
    )
    labels = list(servers)
    table = {label: np.full((args.load_rounds, 2 * LOAD_CLIENTS), math.nan) for label in labels}
    errors: list[str] = []
    tail = silence(args.trailing_silence)
    for round_no in range(args.load_rounds):
        pick = [
            samples[(round_no * 2 * LOAD_CLIENTS + i) % len(samples)]
            for i in range(2 * LOAD_CLIENTS)
        ]
        streams = [s.pcm + tail for s in pick[:LOAD_CLIENTS]]
        wavs = [s.audio_path.read_bytes() for s in pick[LOAD_CLIENTS:]]
        for label in rotation(labels, round_no):
            table[label][round_no], errs = asyncio.run(
                load_round(servers[label], streams, wavs, args)
            )
            errors += [f"{label}: {e}" for e in errs]
    # door: its requests' slots in a round, and what its final is timed from
    columns = {
        "Wyoming": (slice(0, LOAD_CLIENTS), "audio-stop"),
        "HTTP": (slice(LOAD_CLIENTS, None), "request"),
    }
    stats = {"mean": statistics.fmean, "p95": lambda v: percentile(v, 0.95)}
    live, off, again = labels
    rule = (
        f"live <= the later of the two without x {1 + args.tolerance:g} + {args.tolerance_ms:g} ms"
    )
    checks = []
    for door, (cols, since) in columns.items():
        finals = {label: table[label][:, cols] for label in labels}
        answered = {label: v[~np.isnan(v)].tolist() for label, v in finals.items()}
        print(f"{door} finals ({since} -> transcript):")
        for label, done in answered.items():
            print(
                f"  {label}: mean {ms(statistics.fmean(done) if done else math.nan)}, "
                f"p95 {ms(percentile(done, 0.95))}, max {ms(max(done, default=math.nan))} "
                f"(n={len(done)})"
            )
        ok = True
        figures = []
        for name, stat in stats.items():
            shift = {
                label: paired(finals[label], finals[off], stat, args.load_rounds)
                for label in (live, again)
            }
            print(
                f"  {name}, paired with {off!r} (95 % interval over rounds): "
                + "; ".join(
                    f"{label} {ms_signed(d)} [{ms_signed(lo)}, {ms_signed(hi)}]"
                    for label, (d, lo, hi) in shift.items()
                )
            )
            values = {
                label: float(stat(done)) if done else math.nan for label, done in answered.items()
            }
            bound = (
                max(values[off], values[again]) * (1 + args.tolerance) + args.tolerance_ms / 1000
            )
            ok = ok and values[live] <= bound
            figures.append(f"{name} {ms(values[live])} vs {ms(values[off])} / {ms(values[again])}")
        checks.append(
            (
                f"no final later with live text on ({door}; {rule}, mean and p95)",
                ok,
                ", ".join(figures),
            )
        )
    for error in errors:
        print(f"  failed: {error}")
    checks.append(("every load request answered", not errors, f"{len(errors)} failed"))
    return checks


# --- part 4: the Realtime API --------------------------------------------------------------------

REALTIME_GOAL = 0.100  # speech_stopped -> completed, median


async def realtime_once(url: str, pcm24: bytes) -> tuple[float, str]:
    """speech_stopped -> completed (seconds) of one real-time-paced command, and its text."""
    import base64

    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url.replace("http", "ws") + "/v1/realtime?intent=transcription") as ws,
    ):
        await ws.receive_json()  # session.created
        await ws.send_json({"type": "session.update", "session": REALTIME_SESSION})
        await ws.receive_json()  # session.updated
        stopped: float | None = None
        result: list[tuple[float, str]] = []

        async def read() -> None:
            nonlocal stopped
            while True:
                event = await ws.receive_json(timeout=60)
                kind = event["type"]
                if kind == "input_audio_buffer.speech_stopped" and stopped is None:
                    stopped = time.perf_counter()
                elif kind.endswith("transcription.completed") or kind == "error":
                    result.append((time.perf_counter(), event.get("transcript", str(event))))
                    return

        reader = asyncio.create_task(read())
        audio = pcm24 + bytes(48000)  # a second of silence
        step, started = 4800, time.perf_counter()
        for i, offset in enumerate(range(0, len(audio), step)):
            await asyncio.sleep(max(0.0, started + i * 0.1 - time.perf_counter()))
            piece = base64.b64encode(audio[offset : offset + step]).decode()
            await ws.send_json({"type": "input_audio_buffer.append", "audio": piece})
        await asyncio.wait_for(reader, 60)
    done, text = result[0]
    return (done - stopped if stopped is not None else math.nan), text


def bench_realtime(
    servers: dict[str, ServerProcess], clips: Sequence[Clip], args: argparse.Namespace
) -> list:
    print(
        "== 4. Realtime API: command clips at 24 kHz appended in 100 ms pieces in real time, "
        "server VAD (500 ms), speech_stopped -> completed (checked with live text)"
    )
    checks: list = []
    for label, server in servers.items():
        checks += realtime_server(label, server, clips, args)
    return checks[:2]  # the live-text server's; the other is printed for comparison


def realtime_server(
    label: str, server: ServerProcess, clips: Sequence[Clip], args: argparse.Namespace
) -> list:
    waits: list[float] = []
    for clip in clips:
        audio = read_file(str(clip.path))
        up = np.interp(np.arange(0, len(audio), 2 / 3), np.arange(len(audio)), audio)
        wait, text = asyncio.run(realtime_once(server.url, pcm16(up.astype(np.float32))))
        waits.append(wait)
        if args.verbose:
            print(f"  {clip.path.name}: {ms(wait)}: {text}")
    done = [w for w in waits if not math.isnan(w)]
    median = statistics.median(done) if done else math.nan
    print(
        f"{label}: speech_stopped -> completed: median {ms(median)}, "
        f"p95 {ms(percentile(done, 0.95))}"
    )
    return [
        (
            f"Realtime completed <= {REALTIME_GOAL * 1000:.0f} ms after speech_stopped (median)",
            median <= REALTIME_GOAL,
            ms(median),
        ),
        (
            "every Realtime turn ended by server VAD",
            len(done) == len(waits),
            f"{len(done)}/{len(waits)}",
        ),
    ]


# --- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of parts 1 and 2")
    parser.add_argument(
        "--load-rounds", type=int, default=12, help="rounds of part 3 (each on every server)"
    )
    parser.add_argument("--audio-dir", type=Path, default=AUDIO_DIR)
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips per part")
    parser.add_argument("--chunk-samples", type=int, default=1024)
    parser.add_argument("--chunk-delay", type=float, default=0.064, help="seconds between chunks")
    parser.add_argument("--trailing-silence", type=float, default=0.7, help="seconds")
    parser.add_argument("--timeout", type=float, default=60.0, help="per event / request, seconds")
    parser.add_argument("--tolerance", type=float, default=0.05, help="part 3, relative")
    parser.add_argument("--tolerance-ms", type=float, default=20.0, help="part 3, absolute")
    parser.add_argument("--live-args", default="", help="extra flags of the live-text server")
    parser.add_argument(
        "--off-args", default="--no-live-text", help="extra flags of the server without it"
    )
    parser.add_argument("--parts", default="1234", help="which parts to run, e.g. 34")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per measurement")
    args = parser.parse_args()

    manifest = [c for c in load_manifest(args.audio_dir) if c.language == "en" and c.path.exists()]
    commands = [c for c in manifest if c.duration < COMMAND_MAX_SECONDS and c.reference.strip()]
    longs = [c for c in manifest if LONG_SECONDS[0] <= c.duration <= LONG_SECONDS[1]]
    if args.limit:
        commands, longs = commands[: args.limit], longs[: args.limit]
    if not commands or not longs:
        print(f"no English command or long clips in {args.audio_dir}/MANIFEST.tsv")
        return 2

    common = ["-m", args.model, "--preload", "--no-zeroconf", "--ttl", "0"]
    live = ServerProcess([*common, *shlex.split(args.live_args)])
    off = ServerProcess([*common, *shlex.split(args.off_args)])
    again = ServerProcess([*common, *shlex.split(args.off_args)])  # part 3's A/A control
    started = [live, off, again] if "3" in args.parts else [live, off]
    log_dir = REPO / "bench" / "out"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"model {args.model}; live text: {shlex.join(live.args)}; off: {shlex.join(off.args)}")
    checks: list[tuple[str, bool, str]] = []
    try:
        for server in started:
            try:
                server.start(log_dir)
            except RuntimeError as err:  # e.g. a server without --no-live-text: see --off-args
                print(f"a server did not start ({shlex.join(server.args)}): {err}")
                return 2
        raw = RawLibrary(args.model)
        with tempfile.TemporaryDirectory(prefix="streaming-bench-") as corpus:
            write_corpus(commands, args.audio_dir, Path(corpus))
            samples = load_corpus(corpus)
            cases = [
                Case("streaming, live text", live, MODE_STREAMING),
                Case("streaming, --no-live-text", off, MODE_STREAMING),
                Case("non-streaming, live text", live, MODE_NON_STREAMING),
            ]
            if "1" in args.parts:
                bench_commands(cases, samples, raw, args)
                checks += report_commands(cases, samples, raw, args)
            if "2" in args.parts:
                checks += bench_long(live, longs, args)
            servers = {"live text": live, "--no-live-text": off}
            if "3" in args.parts:
                checks += bench_load({**servers, AGAIN: again}, samples, args)
            if "4" in args.parts:
                checks += bench_realtime(servers, commands, args)
        print(f"live-text server streaming counters: {live.health().get('streaming')}")
    finally:
        for server in started:
            server.stop()
    print("== checks")
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
