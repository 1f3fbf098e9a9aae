"""One long English recording through our HTTP path versus the raw faster-whisper library,
sequential and batched, same model, same audio, in the same run.

The recording is every English clip of the shared audio manifest (../shared/audio, absent from the
public repository) that has a reference transcript, in manifest order, 16 kHz mono, joined with
0.5 s of silence (33 clips, 254 s); its reference is the clips' references joined.
``--seconds N`` keeps the first clips whose joined length fits in N seconds. For each model:

1. ours: a server started here (loopback, free port, default settings, the model preloaded); the
   recording uploaded once as a WAV file to POST /v1/audio/transcriptions with the ``openai`` SDK
   (language en, response_format json), timed end to end. The server is stopped before 2 and 3.
2. library, sequential: ``WhisperModel(<the directory our resolver gives>, device="cpu",
   compute_type="int8", cpu_threads=<our server's default per worker>)``,
   ``model.transcribe(audio, beam_size=5, language="en")``, segments consumed.
3. library, batched B: ``BatchedInferencePipeline(model).transcribe(audio, batch_size=B,
   beam_size=5, language="en")`` for each of ``--batch-sizes`` (its own defaults otherwise: Silero
   VAD chunks, no temperature fallback, no conditioning on the previous text).

Prints the CPU model, then per model a table: wall seconds, times real time (audio seconds /
wall), WER (bench/wer.py's normalisation and edit distance), and wall time / the sequential
library's and the WER difference in points; then the CPU seconds each method used (the server
process's, read from /proc, for ours; this process's for the library) and their ratio to the
sequential library's: on a machine shared with other work, wall times follow the load, CPU
seconds much less. Writes the rows to bench/out/longfile-<time>.json.

Run: ``python bench/longfile.py [--models tiny.en,base] [--batch-sizes 4,8] [--seconds N]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.wer import Score, timed  # noqa: E402
from tests.harness import AUDIO_DIR, Clip, ServerProcess, load_manifest  # noqa: E402

RATE = 16000
PAUSE_SECONDS = 0.5
BASELINE = "library, sequential"


@dataclass
class Recording:
    """The joined clips as 16-bit PCM (what is uploaded) and their joined reference."""

    pcm: np.ndarray  # int16, mono, RATE
    reference: str
    clips: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.pcm) / RATE

    def samples(self) -> np.ndarray:
        """float32 in [-1, 1): the very samples the WAV upload carries."""
        return self.pcm.astype(np.float32) / 32768.0

    def wav(self) -> bytes:
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(self.pcm.astype("<i2").tobytes())
        return buffer.getvalue()


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 32767 / 32768) * 32768.0).round().astype(np.int16)


def build_recording(
    clips: Iterable[Clip],
    decode: Callable[[Path], np.ndarray],
    seconds: float = 0.0,
    pause_seconds: float = PAUSE_SECONDS,
) -> Recording:
    """The clips (float32 at RATE from ``decode``) joined with ``pause_seconds`` of silence, and
    their references joined with spaces; with ``seconds``, only the first clips whose joined
    length fits (at least one)."""
    pause = np.zeros(round(pause_seconds * RATE), dtype=np.int16)
    pieces: list[np.ndarray] = []
    references: list[str] = []
    names: list[str] = []
    length = 0
    for clip in clips:
        pcm = to_pcm16(decode(clip.path))
        added = len(pcm) + (len(pause) if pieces else 0)
        if seconds and pieces and (length + added) / RATE > seconds:
            break
        if pieces:
            pieces.append(pause)
        pieces.append(pcm)
        references.append(clip.reference.strip())
        names.append(str(clip.path.relative_to(clip.path.parents[1])))
        length += added
    pcm = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
    return Recording(pcm, " ".join(references), names)


@dataclass
class Row:
    model: str
    method: str
    wall_seconds: float
    audio_seconds: float
    wer: float
    errors: int
    words: int
    text: str
    time_ratio: float = float("nan")  # wall / the sequential library's
    wer_points: float = float("nan")  # WER - the sequential library's, in points
    cpu_seconds: float = float("nan")  # CPU time the decoding process used
    cpu_ratio: float = float("nan")  # CPU seconds / the sequential library's

    @property
    def realtime(self) -> float:
        return self.audio_seconds / self.wall_seconds


def scored(model: str, method: str, recording: Recording, text: str, wall: float) -> Row:
    score = Score()
    wer = score.add(recording.reference, text, wall)
    return Row(model, method, wall, recording.seconds, wer, score.errors, score.words, text)


def compare(rows: Sequence[Row]) -> None:
    """Fill each row's time ratio and WER points against the sequential library's row."""
    base = next(r for r in rows if r.method == BASELINE)
    for row in rows:
        row.time_ratio = row.wall_seconds / base.wall_seconds
        row.wer_points = row.wer - base.wer
        row.cpu_ratio = row.cpu_seconds / base.cpu_seconds


def table(rows: Sequence[Row]) -> str:
    lines = [
        f"{'method':24s} {'wall s':>8s} {'x real time':>12s} {'WER %':>7s} "
        f"{'time / lib':>11s} {'WER vs lib':>11s} {'cpu s':>8s} {'cpu / lib':>10s}"
    ]
    for r in rows:
        lines.append(
            f"{r.method:24s} {r.wall_seconds:8.2f} {r.realtime:12.2f} {r.wer:7.2f} "
            f"{r.time_ratio:11.3f} {r.wer_points:+11.2f} {r.cpu_seconds:8.2f} {r.cpu_ratio:10.3f}"
        )
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no lscpu)"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def process_cpu(pid: int) -> float:
    """CPU seconds (user and system, every thread) process ``pid`` has used (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ours(model: str, recording: Recording, log_dir: Path) -> tuple[str, float, dict, float]:
    """(text, seconds, /health, server CPU seconds) of one upload to a fresh server with
    default settings."""
    from openai import OpenAI

    server = ServerProcess(["-m", model, "--preload", "--no-zeroconf", "--no-wyoming"])
    wav = recording.wav()
    try:
        server.start(log_dir)
        client = OpenAI(base_url=server.url + "/v1", api_key="none", timeout=7200, max_retries=0)
        assert server.proc is not None
        cpu = process_cpu(server.proc.pid)
        answer, seconds = timed(
            lambda: client.audio.transcriptions.create(
                model=model,
                file=("longfile.wav", wav, "audio/wav"),
                language="en",
                response_format="json",
            )
        )
        cpu = process_cpu(server.proc.pid) - cpu
        health = server.health()
    finally:
        server.stop()
    return answer.text, seconds, health, cpu


def bench_model(
    model: str, recording: Recording, batch_sizes: Sequence[int], log_dir: Path
) -> list[Row]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from wyoming_whisper.backends.ctranslate2_models import resolve
    from wyoming_whisper.config import default_concurrency, default_threads

    threads = default_threads(default_concurrency())  # what each of our workers gets
    rows: list[Row] = []
    text, seconds, health, cpu = ours(model, recording, log_dir)
    rows.append(scored(model, "ours (HTTP upload)", recording, text, seconds))
    rows[-1].cpu_seconds = cpu
    print(
        f"server: {health.get('device')} {health.get('compute_type')}, "
        f"encoder window {health.get('encoder_window')}"
    )

    library = WhisperModel(resolve(model), device="cpu", compute_type="int8", cpu_threads=threads)
    audio = recording.samples()

    def sequential() -> str:
        segments, _ = library.transcribe(audio, beam_size=5, language="en")
        return "".join(s.text for s in segments).strip()

    cpu = time.process_time()
    text, seconds = timed(sequential)
    rows.append(scored(model, BASELINE, recording, text, seconds))
    rows[-1].cpu_seconds = time.process_time() - cpu
    pipeline = BatchedInferencePipeline(library)
    for size in batch_sizes:

        def batched(size: int = size) -> str:
            segments, _ = pipeline.transcribe(audio, batch_size=size, beam_size=5, language="en")
            return "".join(s.text for s in segments).strip()

        cpu = time.process_time()
        text, seconds = timed(batched)
        rows.append(scored(model, f"library, batched {size}", recording, text, seconds))
        rows[-1].cpu_seconds = time.process_time() - cpu
    compare(rows)
    print(f"library: cpu int8, {threads} thread(s) (our server's default per worker)")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="tiny.en,base", help="comma-separated")
    parser.add_argument("--batch-sizes", default="4,8", help="comma-separated")
    parser.add_argument(
        "--seconds", type=float, default=0.0, help="only the first clips up to N seconds"
    )
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]

    if not (AUDIO_DIR / "MANIFEST.tsv").exists():
        print(
            f"{AUDIO_DIR} is absent: this bench needs the shared audio set (../shared/audio, or "
            "WHISPER_TEST_AUDIO), which is not in the public repository",
            file=sys.stderr,
        )
        return 2
    clips = [
        c
        for c in load_manifest(AUDIO_DIR)
        if c.language == "en" and c.reference and c.path.exists()
    ]
    if not clips:
        print(f"no English clips with references in {AUDIO_DIR}", file=sys.stderr)
        return 2

    from faster_whisper import decode_audio

    recording = build_recording(
        clips, lambda p: decode_audio(str(p), sampling_rate=RATE), args.seconds
    )
    print(f"CPU: {cpu_model()}")
    print(
        f"recording: {recording.seconds:.1f} s, {len(recording.clips)} English clips joined "
        f"with {PAUSE_SECONDS} s pauses"
    )
    log_dir = Path(tempfile.mkdtemp(prefix="longfile-bench-"))
    results: list[Row] = []
    from wyoming_whisper.backends.ctranslate2_models import ModelResolutionError, resolve

    for model in models:
        print(f"== {model}")
        try:
            resolve(model)
        except ModelResolutionError as err:
            print(f"not available here: {err}")
            continue
        rows = bench_model(model, recording, batch_sizes, log_dir)
        print(f"reference: {rows[0].words} words")
        print(table(rows))
        results.extend(rows)

    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    result = out / f"longfile-{time.strftime('%Y%m%d-%H%M%S')}.json"
    document = {
        "cpu": cpu_model(),
        "audio_seconds": recording.seconds,
        "clips": recording.clips,
        "pause_seconds": PAUSE_SECONDS,
        "reference": recording.reference,
        "rows": [asdict(r) | {"realtime": r.realtime} for r in results],
    }
    result.write_text(json.dumps(document, indent=1))
    print(f"rows: {result}  (server logs in {log_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
