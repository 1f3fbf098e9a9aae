"""Word error rate and time of the OpenAI HTTP path, fitted and full encoder window, versus the raw
faster-whisper library, same model, same clips.

Starts two servers on one model (loopback, free ports), ``--encoder-window auto`` (the default)
and ``--encoder-window full``, sends every clip of the shared audio manifest in the chosen
languages that has a reference transcript to POST /v1/audio/transcriptions of each, and
transcribes the same files with ``WhisperModel.transcribe`` under the same settings (beam 5,
Whisper's temperature fallback schedule, no VAD filter, the server's compute type; language en for
English, detected for the others). Prints per-clip WER and times, then overall WER, total time,
the worst per-clip time ratio auto/full, the fallbacks to the full window, and (for detected
languages) every clip whose detected language differs between auto and full.

Exits 1 when the full window's WER differs from the raw library's by more than 0.2 points, or
auto's exceeds the raw library's by more than 0.3 points (0.5 with other languages than English).

Run: ``python bench/wer.py [--model tiny.en] [--languages en|de,es,fr,pt] [--limit N]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.harness import AUDIO_DIR, DATA_DIR, Clip, ServerProcess, load_manifest  # noqa: E402

TOLERANCE_POINTS = 0.2  # full window (the library's behaviour) vs the raw library
AUTO_TOLERANCE_POINTS = 0.3  # fitted window vs the raw library, English
AUTO_TOLERANCE_POINTS_MULTILINGUAL = 0.5
T = TypeVar("T")


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


def http_transcribe(url: str, path: Path, model: str, language: str | None) -> tuple[str, str]:
    """(text, detected or given language) from POST /v1/audio/transcriptions."""
    boundary = uuid.uuid4().hex
    fields = {"model": model, "response_format": "verbose_json"}
    if language:
        fields["language"] = language
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
        answer = json.loads(resp.read())
    return str(answer["text"]), str(answer.get("language", ""))


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument(
        "--languages", default="en", help="comma-separated clip languages (default: en)"
    )
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips")
    args = parser.parse_args()
    languages = set(args.languages.split(","))
    english = languages == {"en"}
    tolerance = AUTO_TOLERANCE_POINTS if english else AUTO_TOLERANCE_POINTS_MULTILINGUAL

    from faster_whisper import WhisperModel, decode_audio

    from wyoming_whisper.backends.ctranslate2_models import resolve

    # A clip without a reference transcript (faster_whisper/hotwords.mp3) cannot be scored.
    # The shared set where it is there (../shared/audio), else the clips committed with the tests.
    manifest = load_manifest(AUDIO_DIR) or load_manifest(DATA_DIR)
    clips = [c for c in manifest if c.language in languages and c.path.exists() and c.reference]
    if args.limit:
        clips = clips[: args.limit]
    if not clips:
        print(f"no clips in {args.languages} with references found")
        return 2

    common = ["-m", args.model, "--preload", "--no-zeroconf", "--no-wyoming"]
    auto = ServerProcess(common)
    full = ServerProcess([*common, "--encoder-window", "full"])
    log_dir = Path(tempfile.mkdtemp(prefix="wer-bench-"))
    scores = {"auto": Score(), "full": Score(), "raw": Score()}
    worst = (0.0, "")
    language_mismatches: list[str] = []
    try:
        auto.start(log_dir)
        full.start(log_dir)
        health = auto.health()
        compute_type, device = health["compute_type"], health["device"]
        raw_model = WhisperModel(resolve(args.model), device="cpu", compute_type=compute_type)
        audio_seconds = 0.0
        print(f"model {args.model}, servers on {device} {compute_type}, {len(clips)} clips")
        print(
            f"{'clip':45s} {'dur':>6s} {'auto WER':>9s} {'full WER':>9s} {'raw WER':>8s} "
            f"{'auto s':>7s} {'full s':>7s} {'raw s':>7s}"
        )
        language = "en" if english else None
        for clip in clips:
            (auto_text, auto_lang), auto_s = timed(
                lambda c=clip: http_transcribe(auto.url, c.path, args.model, language)
            )
            (full_text, full_lang), full_s = timed(
                lambda c=clip: http_transcribe(full.url, c.path, args.model, language)
            )

            def raw_once(c: Clip = clip) -> str:
                audio = decode_audio(str(c.path), sampling_rate=16000)
                segments, _ = raw_model.transcribe(
                    audio, language=language, beam_size=5, vad_filter=False
                )
                return "".join(s.text for s in segments).strip()

            raw_text, raw_s = timed(raw_once)
            audio_seconds += clip.duration
            wers = [
                scores["auto"].add(clip.reference, auto_text, auto_s),
                scores["full"].add(clip.reference, full_text, full_s),
                scores["raw"].add(clip.reference, raw_text, raw_s),
            ]
            name = str(clip.path.relative_to(clip.path.parents[1]))
            worst = max(worst, (auto_s / full_s, name))
            if auto_lang != full_lang:
                language_mismatches.append(f"{name}: auto {auto_lang}, full {full_lang}")
            print(
                f"{name:45s} {clip.duration:6.1f} {wers[0]:9.1f} {wers[1]:9.1f} {wers[2]:8.1f} "
                f"{auto_s:7.2f} {full_s:7.2f} {raw_s:7.2f}"
            )
        fallbacks = auto.health()["encoder_window"]["fallbacks"]
    finally:
        auto.stop()
        full.stop()

    raw = scores["raw"]
    print()
    print(
        f"audio: {audio_seconds:.1f} s in {len(clips)} clips ({args.languages}), {raw.words} words"
    )
    for name, score in scores.items():
        print(
            f"{name:5s} WER {score.wer:6.2f} %  ({score.wer - raw.wer:+.2f} vs raw)  "
            f"time {score.seconds:7.2f} s  real-time factor {score.seconds / audio_seconds:.3f}"
        )
    print(f"time auto / full: {scores['auto'].seconds / scores['full'].seconds:.3f}")
    print(f"worst per-clip time auto / full: {worst[0]:.2f} ({worst[1]})")
    print(f"fallbacks to the full window: {fallbacks}")
    if not english:
        print(f"detected language differs (auto vs full): {len(language_mismatches)}")
        for line in language_mismatches:
            print(f"  {line}")
    ok = abs(scores["full"].wer - raw.wer) <= TOLERANCE_POINTS
    ok = ok and scores["auto"].wer - raw.wer <= tolerance and not language_mismatches
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
