"""A real Home Assistant core (2025.4.4) with real wyoming-whisper servers, through Home Assistant's
own APIs: onboarding, the config flow by host and port, zeroconf discovery, the add-on's
(Supervisor) discovery, the STT entity, POST /api/stt and Assist pipeline runs; and a server that
reads Assist's names from that Home Assistant, through a stop and a restart of it.

Everything runs in a network namespace that has only loopback (multicast routed to it), so
nothing browses or advertises beyond this machine. tests/home_assistant/scenario.py does the
steps once for the module; each test checks one part of what it saw. Home Assistant lives in its
own venv (``scripts/ha-env``; .ci/run builds it, locally it is built on first use, a few minutes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .harness import REPO, words
from .home_assistant.scenario import run_isolated

pytestmark = pytest.mark.slow  # a real Home Assistant in a network namespace (a minute to set up)


def _ha_python() -> bool:
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    return bool(os.environ.get("WHISPER_HA_PYTHON")) or any(pyenv.glob("3.13.*/bin/python3"))


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # Not platform-only skips: CI (WHISPER_TEST_NO_SKIPS) fails on them; a laptop skips.
    if not _can_unshare():
        pytest.skip("needs unshare -n and ip (a network namespace with only loopback)")
    if not _ha_python():
        pytest.skip("needs Python 3.13 from pyenv for Home Assistant (pyenv install 3.13)")
    venv = os.environ.get("WHISPER_HA_VENV", str(REPO / ".venv-ha"))
    built = subprocess.run(
        [str(REPO / "scripts" / "ha-env"), venv], capture_output=True, text=True, timeout=900
    )
    assert built.returncode == 0, built.stderr[-3000:]
    logs = tmp_path_factory.mktemp("home-assistant")
    out = logs / "seen.json"
    run = run_isolated(venv, out, capture_output=True, text=True)
    assert run.returncode == 0 and out.exists(), run.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    if "failure" in result:
        tails = {p.name: p.read_text()[-3000:] for p in sorted(logs.glob("*.log"))}
        pytest.fail(f"{result['failure']}\n{json.dumps(tails, indent=1)}")
    return result


def test_onboarded_through_the_api(seen: dict[str, Any]) -> None:
    done = {s["step"]: s["done"] for s in seen["onboarding"]}
    assert done["user"] and done["integration"], done


def test_config_flow_by_host_and_port_creates_the_entry(seen: dict[str, Any]) -> None:
    flow = seen["user_flow"]
    assert flow["type"] == "create_entry" and flow["title"] == "wyoming-whisper", flow
    assert flow["result"]["source"] == "user" and flow["result"]["state"] == "loaded"


def test_zeroconf_discovery_is_offered_and_confirmed(seen: dict[str, Any]) -> None:
    flow = seen["zeroconf_flow"]
    assert flow is not None, "Home Assistant's zeroconf never found the server"
    assert flow["context"]["discovery_key"]["key"] == [
        "_wyoming._tcp.local.",
        "whisper-b._wyoming._tcp.local.",
    ]
    entry = seen["zeroconf_entry"]
    assert entry["type"] == "create_entry" and entry["result"]["source"] == "zeroconf", entry


def test_the_add_on_discovery_drives_the_hassio_step(seen: dict[str, Any]) -> None:
    assert seen["hassio_offer"]["step_id"] == "hassio_confirm", seen["hassio_offer"]
    entry = seen["hassio_entry"]
    assert entry["type"] == "create_entry" and entry["result"]["source"] == "hassio", entry
    sources = sorted(e["source"] for e in seen["entries"] if e["state"] == "loaded")
    assert sources == ["hassio", "user", "zeroconf"], seen["entries"]
    assert len(seen["stt_engines_after"]) == 3


def test_the_stt_entity_lists_our_languages(seen: dict[str, Any]) -> None:
    assert seen["entity"] == "stt.wyoming_whisper"
    info = seen["stt_info"]
    assert info["languages"] == ["en"]  # tiny.en is English-only, as its Wyoming info says
    assert info["sample_rates"] == [16000] and info["channels"] == [1]


def test_post_api_stt_transcribes_a_recording(seen: dict[str, Any]) -> None:
    answer = seen["stt_post"]
    assert answer["result"] == "success", answer
    assert words(answer["text"]) in (["one", "two", "three"], ["1", "2", "3"]), answer


@pytest.mark.parametrize("run", ["pipeline_burst", "pipeline_paced"])
def test_an_assist_pipeline_transcribes_as_a_satellite_streams(
    seen: dict[str, Any], run: str
) -> None:
    result = seen[run]
    assert result["error"] is None, result
    assert result["events"][0] == "run-start" and result["events"][-1] == "run-end", result
    assert "stt-end" in result["events"]
    assert words(result["text"]) in (["one", "two", "three"], ["1", "2", "3"]), result


def test_paced_audio_is_answered_by_the_early_decode(seen: dict[str, Any]) -> None:
    """Home Assistant streams a command and a second of silence in real time: the server decoded
    during the pause, so the transcript was ready when the audio ended."""
    assert seen["early"]["early_hits"] >= 1, seen["early"]
    print(f"answer {seen['pipeline_paced']['answer_after_audio_end']:.3f} s after the audio ended")


def test_names_are_read_from_home_assistant(seen: dict[str, Any]) -> None:
    """Three exposed helpers, an area with an alias and a floor: at least those six names."""
    read = seen["names_read"]
    assert read["source"] == "url" and read["connected"] and read["last_error"] is None, read
    assert read["names"] >= 6, read
    assert seen["names_on_a"] is None  # a server not told about Home Assistant reads nothing
    assert words(seen["names_transcript"]) in (["one", "two", "three"], ["1", "2", "3"])


def test_a_registry_change_is_read_again(seen: dict[str, Any]) -> None:
    change = seen["names_after_change"]
    assert change["after"] == change["before"] + 1, change  # "Gorseway lamp", created and exposed


def test_home_assistant_down_leaves_transcription_alone(seen: dict[str, Any]) -> None:
    down = seen["names_while_down"]
    assert down["stale"] and not down["connected"] and down["last_error"], down
    assert down["names"] == seen["names_after_change"]["after"]  # the names read last still serve
    assert words(seen["down_transcript"]) in (["one", "two", "three"], ["1", "2", "3"])
    print(
        f"Wyoming transcription with Home Assistant up {seen['up_transcribe_seconds']} s, "
        f"down {seen['down_transcribe_seconds']} s"
    )


def test_names_refresh_when_home_assistant_is_back(seen: dict[str, Any]) -> None:
    after = seen["names_after_restart"]
    assert after["connected"] and not after["stale"], after
    assert after["last_refresh"] > seen["names_read"]["last_refresh"]


def test_names_from_home_assistant_fix_misheard_names(seen: dict[str, Any]) -> None:
    """The 20 spoken commands of tests/data/names: the server that read the names from Home
    Assistant gets the entity or area name right far more often, and the words no worse."""
    from bench.names import score

    commands = seen["commands"]
    assert len(commands) == 20 and len({c["name"] for c in commands}) == 10
    without, wer_without = score(commands, "without")
    with_names, wer_with = score(commands, "with")
    print(
        f"name accuracy {without:.0%} -> {with_names:.0%}, WER {wer_without:.1%} -> {wer_with:.1%}"
    )
    assert with_names >= without + 0.25, (without, with_names)
    assert wer_with <= wer_without, (wer_without, wer_with)


def test_a_misheard_command_is_carried_out(seen: dict[str, Any]) -> None:
    """Spoken commands tiny.en mishears ("Turn on the Oberlyn cattle", "the Masselhoff porch
    light"), through an Assist pipeline (stt -> intent) on the server that reads Home Assistant's
    names: the server answers the command Home Assistant understands and the helper changes."""
    misheard = seen["misheard"]
    for run in misheard["runs"]:
        assert run["error"] is None, run
        assert run["intent"]["response_type"] == "action_done", run
        expected = "off" if run["said"].startswith("Switch off") else "on"  # was the opposite
        assert run["state"] == expected, run
        print(f"said {run['said']!r}, sent {run['text']!r}: {run['entity']} {run['state']}")
    assert misheard["assist_commands"].get("rewritten", 0) >= 1, misheard
