"""Entity-name accuracy with and without the names read from a real Home Assistant.

Runs tests/home_assistant/scenario.py (Home Assistant 2025.4.4 and wyoming-whisper servers in a
network namespace that has only loopback; needs root for ``unshare -n`` and Python 3.13 for
``scripts/ha-env``): Home Assistant gets helpers and areas with unusual names
(tests/data/names), a server reads them from it (``--hass-url``), and every spoken command of
tests/data/names is transcribed over Wyoming by that server and by one without names. Prints, for
both, how many commands came back with their entity or area name right, and the WER.

Run: ``python bench/names.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.wer import edit_distance, normalize  # noqa: E402
from tests.home_assistant.scenario import run_isolated  # noqa: E402


def name_heard(text: str, name: str) -> bool:
    return " ".join(normalize(name)) in " ".join(normalize(text or ""))


def score(commands: list[dict[str, str]], key: str) -> tuple[float, float]:
    """(share of commands whose name was heard, WER) of one server's transcripts."""
    heard = sum(name_heard(c[key], c["name"]) for c in commands)
    errors = sum(edit_distance(normalize(c["text"]), normalize(c[key] or "")) for c in commands)
    total = sum(len(normalize(c["text"])) for c in commands)
    return heard / len(commands), errors / total


def main() -> int:
    venv = os.environ.get("WHISPER_HA_VENV", str(REPO / ".venv-ha"))
    subprocess.run([str(REPO / "scripts" / "ha-env"), venv], check=True, stdout=subprocess.DEVNULL)
    out = Path(tempfile.mkdtemp(prefix="names-bench-")) / "seen.json"
    run_isolated(venv, out, check=True)
    seen = json.loads(out.read_text())
    if "failure" in seen:
        print(f"scenario failed: {seen['failure']} (logs in {out.parent})")
        return 1
    commands = seen["commands"]
    names = {c["name"] for c in commands}
    print(f"{len(commands)} commands, {len(names)} unusual names, tiny.en, over Wyoming")
    for c in commands:
        print(f"  {c['text']!r}: without {c['without']!r} | with {c['with']!r}")
    without, wer_without = score(commands, "without")
    with_names, wer_with = score(commands, "with")
    print(f"names read from Home Assistant: {seen['names_read']['names']}")
    print(
        f"entity-name accuracy: without {without:.0%}, with names {with_names:.0%} "
        f"(+{(with_names - without) * 100:.0f} points)"
    )
    print(f"WER: without {wer_without:.1%}, with names {wer_with:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
