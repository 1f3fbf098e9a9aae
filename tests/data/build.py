"""How tests/data was made (run once by a maintainer; the tests only read the committed files).

Copies the clips the tests use from a checkout of the shared recordings (``../shared/audio`` with
its MANIFEST.tsv), makes large PCM WAVs lossless FLAC, re-encodes the 44.1 kHz stereo JFK FLAC to
16 kHz mono, renders the one synthetic command with espeak-ng, and writes MANIFEST.tsv with the
source and licence of every file.

    python tests/data/build.py [SHARED_AUDIO_DIR]
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import av

HERE = Path(__file__).resolve().parent
COLUMNS = ["relpath", "language", "duration_seconds", "reference_text", "source", "license", "made"]

# relpath in tests/data -> (relpath in the shared audio, how it was made)
COPIED = {
    "whisper_cpp/jfk.wav": ("whisper_cpp/jfk.wav", "copy"),
    "openai_whisper/jfk.flac": ("openai_whisper/jfk.flac", "16 kHz mono"),
    "cuttledoc_fleurs/fleurs-de-000.ogg": ("cuttledoc_fleurs/fleurs-de-000.ogg", "copy"),
    "cuttledoc_fleurs/fleurs-de-001.ogg": ("cuttledoc_fleurs/fleurs-de-001.ogg", "copy"),
    "cuttledoc_fleurs/fleurs-en-004.ogg": ("cuttledoc_fleurs/fleurs-en-004.ogg", "copy"),
    "deepspeech/LDC93S1.wav": ("deepspeech/LDC93S1.wav", "copy"),
    "faster_whisper/multilingual.mp3": ("faster_whisper/multilingual.mp3", "copy"),
    "lhotse/2412-153948-0000.flac": ("lhotse/2412-153948-0000.flac", "copy"),
    "lhotse/LJ002-0020.wav": ("lhotse/LJ002-0020.wav", "copy"),
    "lhotse/LJ002-0035.wav": ("lhotse/LJ002-0035.wav", "copy"),
    "picovoice_leopard/test.wav": ("picovoice_leopard/test.wav", "copy"),
    "picovoice_leopard/test_de.wav": ("picovoice_leopard/test_de.wav", "copy"),
    "picovoice_leopard/test_es.flac": ("picovoice_leopard/test_es.wav", "lossless FLAC"),
    "speech_recognition/english.wav": ("speech_recognition/english.wav", "copy"),
    **{
        f"coqui_tts_ljspeech/LJ001-{n:04d}.flac": (
            f"coqui_tts_ljspeech/LJ001-{n:04d}.wav",
            "lossless FLAC",
        )
        for n in (1, 2, 3, 5, 7, 8, 9, 13)
    },
}
# Rendered commands, with espeak-ng's speed (words per minute): one naming a room that is in no
# dictionary (tests/test_wyoming.py); a one-word command whose shortened encoder window is judged
# silence where the library's 30 s window hears it (tests/test_encoder_window.py).
SPOKEN = {
    "espeak/brindlethorpe.flac": ("Turn on the lights in the Brindlethorpe room", 150),
    "espeak/one.flac": ("One.", 160),
}


def to_flac(src: Path, dst: Path, *, rate: int | None = None) -> None:
    """Any audio -> 16-bit mono FLAC (lossless for 16-bit mono PCM input), resampled to ``rate``."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="flac") as out:
        in_rate = inp.streams.audio[0].rate
        stream = out.add_stream("flac", rate=rate or in_rate)
        stream.layout = "mono"  # type: ignore[union-attr]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate or in_rate)
        for frame in inp.decode(audio=0):
            for resampled in resampler.resample(frame):
                out.mux(stream.encode(resampled))  # type: ignore[union-attr]
        for resampled in resampler.resample(None):
            out.mux(stream.encode(resampled))  # type: ignore[union-attr]
        out.mux(stream.encode(None))  # type: ignore[union-attr]


def render(text: str, speed: int, dst: Path) -> None:
    """``text`` spoken by espeak-ng (en-us at ``speed`` words per minute) -> FLAC at ``dst``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    wav = dst.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(speed), "-w", str(wav), text], check=True)
    with wave.open(str(wav)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
    to_flac(wav, dst)
    wav.unlink()


def duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate


def main(shared: Path) -> None:
    with open(shared / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        rows = {r["relpath"]: r for r in csv.DictReader(f, delimiter="\t")}
    out_rows = []
    for relpath, (source, made) in COPIED.items():
        row, src, dst = rows[source], shared / source, HERE / relpath
        dst.parent.mkdir(parents=True, exist_ok=True)
        if made == "copy":
            shutil.copyfile(src, dst)
        else:
            to_flac(src, dst, rate=16000 if made == "16 kHz mono" else None)
        origin = f"{row['source_repo']}:{row['source_path']}"
        how = made if made == "copy" else f"{made} of the source"
        out_rows.append(
            [relpath, row["language"], f"{duration(dst):.3f}", row["reference_text"], origin,
             row["license"], how]
        )  # fmt: skip
    for relpath, (text, speed) in SPOKEN.items():
        dst = HERE / relpath
        render(text, speed, dst)
        version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True)
        origin = f"rendered by {version.stdout.split()[3]} (espeak-ng -v en-us -s {speed})"
        licence = "CC0-1.0 (text written for this project; synthetic voice)"
        out_rows.append([relpath, "en", f"{duration(dst):.3f}", text, origin, licence, "rendered"])
    with open(HERE / "MANIFEST.tsv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow([*COLUMNS, "sha256"])
        for row in sorted(out_rows):
            digest = hashlib.sha256((HERE / row[0]).read_bytes()).hexdigest()
            writer.writerow([*row, digest])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "audio")
