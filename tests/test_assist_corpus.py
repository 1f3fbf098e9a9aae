"""The Assist bench's corpus (tests/data/assist) and its pure helpers; no Home Assistant here
(bench/assist.py runs the real thing)."""

from __future__ import annotations

import hashlib

from bench.assist import said_twice, spread
from tests.data.assist import build
from tests.home_assistant.assist import before_values, check, observed, parse


def test_manifest_is_the_table_rendered() -> None:
    rows = build.load()
    table = build.rows()
    assert [r["relpath"] for r in rows] == [r["relpath"] for r in table]
    for row, want in zip(rows, table, strict=True):
        for key in ("voice", "kind", "text", "intent", "target", "name", "before", "expect"):
            assert row[key] == want[key], (row["relpath"], key)
        flac = build.HERE / row["relpath"]
        assert hashlib.sha256(flac.read_bytes()).hexdigest() == row["sha256"], flac
        assert 1.3 < float(row["duration"]) < 8, row


def test_counts_voices_and_size() -> None:
    rows = build.load()
    assert sum(r["kind"] == "command" for r in rows) >= 150
    assert sum(r["kind"] == "free" for r in rows) >= 20
    voices = {r["voice"] for r in rows}
    assert len(voices) >= 6 and {v.split(":")[0] for v in voices} == {"espeak", "festival"}
    assert sum((build.HERE / r["relpath"]).stat().st_size for r in rows) < 6_000_000


def test_every_name_spoken_is_created() -> None:
    created = set(build.FLOORS) | set(build.AREAS) | set(build.TIMER_NAMES)
    for _, (_, aliases) in build.AREAS.items():
        created |= set(aliases)
    for name, _, aliases, _ in build.ENTITIES.values():
        created |= {name, *aliases}
    ordinary = {"Kitchen", "Kitchen light", "Coffee maker", "Garage door", "Front door", "Snug"}
    assert len(created - ordinary - {"Ground floor", "Telly"}) >= 20
    rows = build.load()
    for row in rows:
        if row["kind"] == "free":
            assert not row["target"] and not row["expect"], row
            continue
        assert row["name"] == "" or row["name"] in created, row
        assert row["name"].lower() in row["text"].lower(), row
        for target in row["target"].split(","):
            assert target in build.ENTITIES or target == build.TIMERS, row
        assert parse(row["expect"]), row
    assert sum(bool(r["name"]) for r in rows if r["kind"] == "command") >= 140


def test_checks_of_a_row() -> None:
    assert before_values("state=on;brightness_pct=100;volume_level=0.8") == {
        "state": "on", "brightness_pct": 100, "volume_level": 0.8
    }  # fmt: skip
    assert parse("say=Set a timer for 5 minutes") == [("say", "=", "Set a timer for 5 minutes")]
    light = observed({"state": "on", "attributes": {"brightness": 128}})
    assert light["brightness_pct"] == 50
    assert check("state=on;brightness_pct=50", {"light.a": light}, {}) == []
    assert check("state=off", {"light.a": light}, {}) != []
    answer = {"response_type": "query_answer", "speech": "Yes, on", "success": ["light.b"]}
    assert check("response=query_answer;speech~yes", {"light.b": light}, answer) == []
    # the right words about another entity are not the command carried out
    assert check("response=query_answer;speech~yes", {"light.a": light}, answer) != []
    timers = {"sensor.bench_timers": {"last_event": "started", "last_name": "Crumbleton"}}
    assert check("last_event=started;last_name=crumbleton", timers, {}) == []


def test_said_twice_and_spread() -> None:
    assert said_twice(
        "Turn on the Plantuary lamp", "Turn on the Plantuary lamp. Turn on the Plantuary lamp."
    )
    assert not said_twice("Turn on the Plantuary lamp", "Turn on the planetary lamp.")
    heard = "Turn off the Drossmere fan, Drossmere fan,"
    assert said_twice("Turn off the Drossmere fan", heard, "Drossmere fan")
    assert not said_twice(
        "Turn off the Drossmere fan", "Turn off the Drossmere fan.", "Drossmere fan"
    )
    rows = [{"i": str(i)} for i in range(10)]
    assert [r["i"] for r in spread(rows, 5)] == ["0", "2", "4", "6", "8"]
    assert spread(rows, None) == rows
