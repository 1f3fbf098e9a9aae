"""Spoken commands that name unusual entities and rooms, for the names-from-Home-Assistant tests
and bench/names.py: rendered once with espeak-ng (two voices), kept as 16 kHz FLAC.

    python tests/data/names/build.py      (rewrites the FLACs and MANIFEST.tsv here)
"""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from build import duration, to_flac  # noqa: E402  (tests/data/build.py)

# The names Home Assistant gets in the tests: helpers (entities), an area; none is in a dictionary.
ENTITIES = (
    "Plantuary lamp",
    "Ecobee",
    "Quillhaven fan",
    "Zephyrine heater",
    "Marigoldia speaker",
    "Tarnwick blinds",
    "Oberlyn kettle",
    "Vasselhoff porch light",
)
AREAS = ("Brindlethorpe", "Snug")
COMMANDS = (
    ("Turn on the Plantuary lamp", "Plantuary lamp"),
    ("Switch off the Plantuary lamp", "Plantuary lamp"),
    ("Set the Ecobee to twenty degrees", "Ecobee"),
    ("What is the Ecobee set to", "Ecobee"),
    ("Turn on the Quillhaven fan", "Quillhaven fan"),
    ("Turn off the Quillhaven fan", "Quillhaven fan"),
    ("Turn on the lights in Brindlethorpe", "Brindlethorpe"),
    ("Is anyone in Brindlethorpe", "Brindlethorpe"),
    ("Turn on the Zephyrine heater", "Zephyrine heater"),
    ("Turn the Zephyrine heater off", "Zephyrine heater"),
    ("Play music on the Marigoldia speaker", "Marigoldia speaker"),
    ("Pause the Marigoldia speaker", "Marigoldia speaker"),
    ("Close the Tarnwick blinds", "Tarnwick blinds"),
    ("Open the Tarnwick blinds halfway", "Tarnwick blinds"),
    ("Turn on the Oberlyn kettle", "Oberlyn kettle"),
    ("Is the Oberlyn kettle on", "Oberlyn kettle"),
    ("Turn off all the lights in the Snug", "Snug"),
    ("Dim the lights in the Snug", "Snug"),
    ("Turn on the Vasselhoff porch light", "Vasselhoff porch light"),
    ("Switch off the Vasselhoff porch light", "Vasselhoff porch light"),
)
VOICES = ("en-us", "en-gb")
COLUMNS = ["relpath", "text", "name", "voice", "duration", "license", "sha256"]
LICENSE = "CC0-1.0 (text written for this project; synthetic voice)"


def main() -> None:
    rows = []
    for i, (text, name) in enumerate(COMMANDS):
        voice = VOICES[i % len(VOICES)]
        flac = HERE / f"{i:02d}.flac"
        wav = flac.with_suffix(".wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True)
        to_flac(wav, flac, rate=16000)
        wav.unlink()
        digest = hashlib.sha256(flac.read_bytes()).hexdigest()
        rows.append([flac.name, text, name, voice, f"{duration(flac):.3f}", LICENSE, digest])
    with open(HERE / "MANIFEST.tsv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)


def load() -> list[dict[str, str]]:
    with open(HERE / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


if __name__ == "__main__":
    main()
