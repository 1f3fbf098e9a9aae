"""Word error rate of the OpenAI HTTP path versus the raw faster-whisper library, same model.

Starts the server on one model (loopback, free ports), sends every English clip of the shared
audio manifest that has a reference transcript to POST /v1/audio/transcriptions, and transcribes
the same files with
``WhisperModel.transcribe`` under the same settings (beam 5, Whisper's temperature fallback
schedule, no VAD filter, language en, the server's compute type). Prints per-clip and overall WER
for both, the difference, and each path's real-time factor (processing seconds / audio seconds).
Exits 1 when the two WERs differ by more than 0.2 points.

Run: ``python bench/wer.py [--model tiny.en] [--limit N]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import AUDIO_DIR, DATA_DIR, ServerProcess, load_manifest  # noqa: E402

TOLERANCE_POINTS = 0.2


def normalize(text: str) -> list[str]:
    """Lower case, punctuation dropped (apostrophes inside words kept), split on spaces."""
    kept = []
    for i, char in enumerate(text.lower()):
        inner_apostrophe = char in "'\u2019" and 0 < i < len(text) - 1 and text[i - 1].isalnum()
        kept.append(char if char.isalnum() or char.isspace() or inner_apostrophe else " ")
    return "".join(kept).replace("\u2019", "'").split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance: substitutions + deletions + insertions."""
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(
                min(
                    previous[j] + 1,
                    current[j - 1] + 1,
                    previous[j - 1] + (ref_word != hyp_word),
                )
            )
        previous = current
    return previous[-1]


@dataclass
class Score:
    errors: int = 0
    words: int = 0
    seconds: float = 0.0

    def add(self, reference: str, hypothesis: str, seconds: float) -> float:
        ref, hyp = normalize(reference), normalize(hypothesis)
        errors = edit_distance(ref, hyp)
        self.errors += errors
        self.words += len(ref)
        self.seconds += seconds
        return 100.0 * errors / max(1, len(ref))

    @property
    def wer(self) -> float:
        return 100.0 * self.errors / max(1, self.words)


def http_transcribe(url: str, path: Path, model: str) -> str:
    boundary = uuid.uuid4().hex
    fields = {"model": model, "language": "en", "response_format": "json"}
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(
        url + "/v1/audio/transcriptions",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(req, timeout=600) as resp:
        return str(json.loads(resp.read())["text"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips")
    args = parser.parse_args()

    from faster_whisper import WhisperModel, decode_audio

    from wyoming_whisper.models.resolve import resolve

    # A clip without a reference transcript (faster_whisper/hotwords.mp3) cannot be scored.
    # The shared set where it is there (../shared/audio), else the clips committed with the tests.
    manifest = load_manifest(AUDIO_DIR) or load_manifest(DATA_DIR)
    clips = [c for c in manifest if c.language == "en" and c.path.exists() and c.reference]
    if args.limit:
        clips = clips[: args.limit]
    if not clips:
        print("no English clips with references found")
        return 2

    server = ServerProcess(["-m", args.model, "--preload", "--no-zeroconf", "--no-wyoming"])
    server.start(Path(tempfile.mkdtemp(prefix="wer-bench-")))
    try:
        health = server.health()
        compute_type, device = health["compute_type"], health["device"]
        raw_model = WhisperModel(resolve(args.model), device="cpu", compute_type=compute_type)
        http_score, raw_score = Score(), Score()
        audio_seconds = 0.0
        print(f"model {args.model}, server on {device} {compute_type}, {len(clips)} clips")
        print(f"{'clip':45s} {'dur':>6s} {'http WER':>9s} {'raw WER':>8s}")
        for clip in clips:
            started = time.perf_counter()
            http_text = http_transcribe(server.url, clip.path, args.model)
            http_seconds = time.perf_counter() - started

            started = time.perf_counter()
            audio = decode_audio(str(clip.path), sampling_rate=16000)
            segments, _ = raw_model.transcribe(audio, language="en", beam_size=5, vad_filter=False)
            raw_text = "".join(s.text for s in segments).strip()
            raw_seconds = time.perf_counter() - started

            audio_seconds += clip.duration
            http_wer = http_score.add(clip.reference, http_text, http_seconds)
            raw_wer = raw_score.add(clip.reference, raw_text, raw_seconds)
            name = str(clip.path.relative_to(clip.path.parents[1]))
            print(f"{name:45s} {clip.duration:6.1f} {http_wer:9.1f} {raw_wer:8.1f}")
    finally:
        server.stop()

    diff = http_score.wer - raw_score.wer
    print()
    print(f"audio: {audio_seconds:.1f} s in {len(clips)} English clips, {http_score.words} words")
    print(f"WER http: {http_score.wer:.2f} %   raw faster-whisper: {raw_score.wer:.2f} %")
    print(f"difference: {diff:+.2f} points (allowed: {TOLERANCE_POINTS})")
    print(
        f"real-time factor http: {http_score.seconds / audio_seconds:.3f}   "
        f"raw: {raw_score.seconds / audio_seconds:.3f}"
    )
    return 0 if abs(diff) <= TOLERANCE_POINTS else 1


if __name__ == "__main__":
    sys.exit(main())
