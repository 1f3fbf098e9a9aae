"""The fitted encoder window against the full 30 s window, clip by clip, on short clips.

On average the fitted window (``--encoder-window auto``, the default) is as accurate as the full
one, but a user meets clips, not averages: this counts the clips where one window gets words wrong
that the other gets right. Each clip is decoded in this process by our faster-whisper backend with
each window (the same model files, ``beam_size=5``, ``language="en"``, the VAD filter on, as a
Wyoming request is decoded, no names), and scored against its reference (bench/wer.py's
normalisation and word edit distance).

The clips (every one under ``--max-seconds``, 10 s by default):

- tests/data/assist: 180 spoken commands and sentences that are not commands, in nine synthetic
  voices (espeak-ng variants and Debian's festival voices);
- tests/data/names: 20 commands naming unusual entities;
- the English clips of tests/data and, where present, ../shared/audio (real speech);
- ``--render N`` (default 90) everyday sentences rendered here in the same nine voices (cached in
  bench/out/window-clips/; needs espeak-ng and festival).

Prints the CPU model, then per model: clips, WER of each window, the clips where ``auto`` made
more errors than ``full`` and the other way round, the decode seconds of each, and the clips that
differ (reference, auto, full). Writes every clip's row to bench/out/window-<time>.json.

Run: ``python bench/window.py [--models tiny.en,base] [--max-seconds 10] [--render 90]
[--limit N]`` (``--limit``: every k-th clip, about N of them, for a quick look).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.longfile import cpu_model  # noqa: E402
from bench.wer import edit_distance, normalize  # noqa: E402
from tests.harness import AUDIO_DIR, DATA_DIR, load_manifest  # noqa: E402

OUT = REPO / "bench" / "out"
CACHE = OUT / "window-clips"

# Everyday sentences, none of them a command: what a short clip says besides commands.
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "I left my umbrella on the train this morning.",
    "Dinner will be ready in about twenty minutes.",
    "Can you remind me what time the meeting starts?",
    "She bought three apples and a loaf of bread.",
    "The weather was much colder than we expected.",
    "Please call your grandmother before the weekend.",
    "We drove to the coast and watched the sunset.",
    "My brother plays the violin in an orchestra.",
    "The library closes at six on Saturdays.",
    "How far is it from here to the station?",
    "He forgot his password again yesterday.",
    "The children built a castle out of sand.",
    "Our flight was delayed by almost two hours.",
    "Water boils at one hundred degrees Celsius.",
    "I think the blue one looks better on you.",
    "The museum has a new exhibition about whales.",
    "They painted the fence white last summer.",
    "Could you pass me the salt, please?",
    "The printer on the second floor is out of paper.",
    "A cup of coffee costs four dollars here.",
    "The garden needs watering every evening in July.",
    "I have never seen so many stars in the sky.",
    "The train to Manchester leaves from platform nine.",
    "Remember to bring a jacket, it might rain.",
    "Seven hundred people attended the concert.",
    "The cat is sleeping on the windowsill again.",
    "Let's meet at the cafe near the old bridge.",
    "This recipe needs two eggs and a cup of flour.",
    "The answer is somewhere in the second chapter.",
)
VOICES_PER_SENTENCE = 3


@dataclass
class Clip:
    path: Path
    reference: str
    source: str


@dataclass
class Row:
    clip: str
    source: str
    reference: str
    auto: str
    full: str
    auto_errors: int
    full_errors: int
    words: int
    auto_seconds: float
    full_seconds: float


def rendered(count: int) -> list[Clip]:
    """``count`` everyday sentences in the assist corpus' voices, rendered once and cached."""
    from tests.data.assist.build import VOICES, render

    clips = []
    CACHE.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        text = SENTENCES[(k // VOICES_PER_SENTENCE) % len(SENTENCES)]
        voice = VOICES[k % len(VOICES)]
        path = CACHE / f"sentence-{k:03d}.flac"
        if not path.exists():
            render(voice, text, path)
        clips.append(Clip(path, text, f"rendered:{voice}"))
    return clips


def corpus(max_seconds: float, render_count: int) -> list[Clip]:
    from tests.data.assist.build import HERE as ASSIST
    from tests.data.assist.build import load as load_assist
    from tests.data.names.build import HERE as NAMES
    from tests.data.names.build import load as load_names

    clips = [
        Clip(ASSIST / r["relpath"], r["text"], f"assist:{r['voice']}")
        for r in load_assist()
        if float(r["duration"]) <= max_seconds
    ]
    clips += [
        Clip(NAMES / r["relpath"], r["text"], f"names:{r['voice']}")
        for r in load_names()
        if float(r["duration"]) <= max_seconds
    ]
    seen: set[str] = set()
    for directory in (DATA_DIR, AUDIO_DIR):
        for c in load_manifest(directory):
            if c.language != "en" or c.duration > max_seconds or not c.reference:
                continue
            if c.path.name in seen:  # the shared set holds the committed clips too
                continue
            seen.add(c.path.name)
            clips.append(Clip(c.path, c.reference, f"speech:{directory.name}"))
    return clips + rendered(render_count)


def decode_all(model: str, window: str, clips: list[Clip]) -> list[tuple[str, float]]:
    from wyoming_whisper.audio import read_file
    from wyoming_whisper.backends.base import TranscribeOptions
    from wyoming_whisper.backends.faster_whisper import FasterWhisperBackend

    backend = FasterWhisperBackend("cpu", 0, "int8", encoder_window=window)
    loaded = backend.load(backend.resolve(model))
    options = TranscribeOptions(language="en", beam_size=5, vad_filter=True)
    out = []
    try:
        for clip in clips:
            audio = read_file(str(clip.path))
            started = time.perf_counter()
            result = loaded.transcribe(audio, options)
            out.append((result.text, time.perf_counter() - started))
    finally:
        loaded.unload()
    return out


def compare(model: str, clips: list[Clip]) -> list[Row]:
    auto = decode_all(model, "auto", clips)
    full = decode_all(model, "full", clips)
    rows = []
    for clip, (a_text, a_s), (f_text, f_s) in zip(clips, auto, full, strict=True):
        ref = normalize(clip.reference)
        rows.append(
            Row(
                str(clip.path.relative_to(REPO) if clip.path.is_relative_to(REPO) else clip.path),
                clip.source,
                clip.reference,
                a_text,
                f_text,
                edit_distance(ref, normalize(a_text)),
                edit_distance(ref, normalize(f_text)),
                len(ref),
                round(a_s, 3),
                round(f_s, 3),
            )
        )
    return rows


def report(model: str, rows: list[Row]) -> dict[str, float]:
    words = sum(r.words for r in rows)
    auto_worse = [r for r in rows if r.auto_errors > r.full_errors]
    full_worse = [r for r in rows if r.full_errors > r.auto_errors]
    summary = {
        "clips": len(rows),
        "wer_auto": round(100.0 * sum(r.auto_errors for r in rows) / max(1, words), 2),
        "wer_full": round(100.0 * sum(r.full_errors for r in rows) / max(1, words), 2),
        "auto_worse": len(auto_worse),
        "full_worse": len(full_worse),
        "seconds_auto": round(sum(r.auto_seconds for r in rows), 1),
        "seconds_full": round(sum(r.full_seconds for r in rows), 1),
    }
    print(f"\n{model}: {summary['clips']} clips")
    print(f"  WER auto {summary['wer_auto']:.2f} %, full {summary['wer_full']:.2f} %")
    print(f"  clips where auto made more errors than full: {summary['auto_worse']}")
    print(f"  clips where full made more errors than auto: {summary['full_worse']}")
    print(f"  decode seconds: auto {summary['seconds_auto']}, full {summary['seconds_full']}")
    for label, worse in (("auto worse", auto_worse), ("full worse", full_worse)):
        for r in worse:
            print(f"  [{label}] {r.clip} ({r.source})\n    ref:  {r.reference}")
            print(f"    auto: {r.auto}\n    full: {r.full}")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--render", type=int, default=90, help="rendered sentences (0: none)")
    parser.add_argument("--limit", type=int, default=0, help="every k-th clip, about this many")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}")
    clips = corpus(args.max_seconds, args.render)
    if args.limit:
        clips = clips[:: max(1, len(clips) // args.limit)]
    print(f"{len(clips)} clips under {args.max_seconds:g} s")
    results = {}
    for model in args.models.split(","):
        rows = compare(model, clips)
        results[model] = {"summary": report(model, rows), "rows": [asdict(r) for r in rows]}
    OUT.mkdir(exist_ok=True)
    path = OUT / f"window-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"cpu": cpu_model(), "models": results}, indent=1))
    print(f"\nwrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
