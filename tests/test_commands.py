"""wyoming_whisper.commands: near-misses of Home Assistant commands become the command; speech
stays speech.

Pure logic over Home Assistant's own sentences (hassil + home-assistant-intents, English); the
real Home Assistant carrying out a repaired command is in tests/test_home_assistant.py. Imported
through the package, as other importers may: its names are kept wherever their modules are.
"""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest

from wyoming_whisper.commands import (
    ALTERNATIVES,
    HEARD_MARGIN,
    Assist,
    Commands,
    Entity,
    Home,
    Match,
    Place,
    choose,
    words,
)
from wyoming_whisper.hass_names import read_home
from wyoming_whisper.linear_patterns import checked

HOME = Home(
    entities=(
        Entity("Plantuary lamp", "light"),
        Entity("Quillhaven fan", "fan"),
        Entity("Zephyrine heater", "switch"),
        Entity("Vasselhoff porch light", "light"),
        Entity("Tarnwick blinds", "cover", (), "blind"),
        Entity("Marigoldia speaker", "media_player"),
        Entity("Ecobee", "climate"),
        Entity("desk lamp", "light", ("reading light",)),
    ),
    areas=(Place("Brindlethorpe"), Place("Snug", ("Den",))),
    floors=(Place("Mezzanine"),),
)


@pytest.fixture(scope="module")
def commands() -> Commands:
    return Commands("en")


@pytest.mark.parametrize(
    "text",
    [
        "Turn on the Plantuary lamp.",
        "Set the Ecobee to 20 degrees.",
        "Close the Tarnwick blinds.",
        "Turn off all the lights in the Snug.",
        "Set the Plantuary lamp brightness to 50%.",
    ],
)
def test_a_command_is_kept_as_it_is(commands: Commands, text: str) -> None:
    match = commands.match(text, HOME)
    assert (match.outcome, match.text) == ("command", text)


@pytest.mark.parametrize(
    ("heard", "meant", "intent"),
    [
        ("Turn on the Plantery lamp.", "Turn on the Plantuary lamp.", "HassTurnOn"),
        ("Turn the Zephyrine heeter off.", "Turn the Zephyrine heater off.", "HassTurnOff"),
        (
            "Turn on the lights in Brindlethorp.",
            "Turn on the lights in Brindlethorpe.",
            "HassTurnOn",
        ),
        ("Turned the desk lamp off.", "Turn the desk lamp off.", "HassTurnOff"),
        ("Turn of the Quillhaven fan.", "Turn off the Quillhaven fan.", "HassTurnOff"),
        ("Switch on to Plantuary lamp.", "Switch on the Plantuary lamp.", "HassTurnOn"),
        (
            "Switch off the Vasselhoff porch light, Swich off the Vasselhoff porch light.",
            "Switch off the Vasselhoff porch light.",
            "HassTurnOff",
        ),
        ("Turn on the reading lite.", "Turn on the reading light.", "HassTurnOn"),
        # No name is heard; Home Assistant's words around where one goes are exact.
        (
            "What is the temperature in the saga?",
            "What is the temperature in the Snug.",
            "HassClimateGetTemperature",
        ),
    ],
)
def test_a_near_miss_becomes_the_command(
    commands: Commands, heard: str, meant: str, intent: str
) -> None:
    match = commands.match(heard, HOME)
    assert (match.outcome, match.text, match.intent) == ("rewritten", meant, intent)
    assert commands.recognize(match.text, HOME) == intent


@pytest.mark.parametrize(
    "text",
    [
        "I bought the Plantuary lamp at a flea market.",
        "The Vasselhoff porch light is broken again.",
        "My brother loves the Quillhaven fan.",
        "The Ecobee was cheaper last year.",
        "What is the capital of France?",
        "Remind me to call mum tomorrow.",
        "Tell me a joke about the Snug.",
        "Tell me a joke about penguins.",
        "What is the capital of France?",
        "It's a Plantuary lamp on the table.",
    ],
)
def test_speech_is_never_rewritten(commands: Commands, text: str) -> None:
    match = commands.match(text, HOME)
    assert (match.outcome, match.text) == ("heard", text)


def test_nothing_without_names(commands: Commands) -> None:
    assert commands.match("Turn on the Plantery lamp.", Home()).outcome == "heard"
    assert commands.match("", HOME).outcome == "heard"


def test_a_client_s_names_have_no_domain_and_still_match(commands: Commands) -> None:
    home = Home.from_names(["Plantuary lamp", "Plantuary lamp", " "])
    assert home.entities == (Entity("Plantuary lamp"),)
    assert commands.match("Turn on the Plantery lamp.", home).text == "Turn on the Plantuary lamp."


def test_words_are_compared_as_templates_write_them() -> None:
    assert words("Set it to 50%, please!") == ["set", "it", "to", "50%", "please"]
    assert words("What\u2019s the Ecobee at?") == ["what's", "the", "ecobee", "at"]


def test_home_assistant_s_registry_read_as_its_agent_matches() -> None:
    home = read_home(
        {"light.a": {"conversation": True}, "cover.b": {"conversation": True}, "fan.c": {}},
        [
            {"entity_id": "light.a", "name": None, "original_name": "Lamp", "aliases": ["Pl "]},
            {"entity_id": "cover.b", "name": "Blinds", "aliases": []},
        ],
        [
            {"entity_id": "light.a", "attributes": {"friendly_name": "Plantuary lamp"}},
            {"entity_id": "cover.b", "attributes": {"device_class": "blind"}},
        ],
        [{"name": "Snug", "aliases": ["Den"]}],
        [{"name": "Mezzanine", "aliases": []}],
    )
    assert home.entities == (
        Entity("Blinds", "cover", (), "blind"),
        Entity("Plantuary lamp", "light", ("Pl",)),
    )
    assert home.areas == (Place("Snug", ("Den",)),) and home.floors == (Place("Mezzanine"),)


def test_a_language_loads_in_the_background_and_an_unknown_one_is_remembered() -> None:
    assist = Assist()
    assert assist.load("xx") is None
    assert assist.get("xx") is None  # remembered: no second load
    assert assist.get("xx-YY") is None


def test_the_home_s_own_sentences_are_commands_and_near_misses_become_them(
    commands: Commands,
) -> None:
    """Sentence triggers (automations' "[it's] party time"), as Home Assistant lists them."""
    home = Home(entities=HOME.entities, sentences=("[it's] party time", "movie night {mode}"))
    assert commands.match("It's party time!", home).outcome == "command"
    match = commands.match("Its party tyme.", home)
    assert (match.outcome, match.text) == ("rewritten", "It's party time.")
    assert commands.match("I had a party last time.", home).outcome == "heard"
    # A wildcard sentence takes anything after it: Home Assistant would run it too; kept as is.
    assert commands.match("Movie night was fun.", home).text == "Movie night was fun."


def test_a_long_transcript_costs_nothing(commands: Commands) -> None:
    import time

    text = "Turn on the Plantery lamp. " * 5000  # a long recording over HTTP
    started = time.perf_counter()
    assert commands.match(text, HOME).outcome == "heard"
    assert time.perf_counter() - started < 0.5


def test_a_client_s_flood_of_names_costs_little(commands: Commands) -> None:
    """A Wyoming client may send a megabyte of transcript_names: the first 500 are matched,
    by rapidfuzz over all of them at once (hostile input, not a home)."""
    import time

    flood = [f"Gadget {i} lamp" for i in range(100_000)] + ["x" * 500]
    home = Home.from_names(["Plantuary lamp", *flood])
    assert len(home.entities) == 500 and home.entities[0] == Entity("Plantuary lamp")
    started = time.perf_counter()
    assert commands.match("Turn on the Plantery lamp.", home).text == "Turn on the Plantuary lamp."
    assert time.perf_counter() - started < 2.0


def test_alternatives_are_the_near_commands_for_the_audio_to_choose(commands: Commands) -> None:
    """Where the words alone cannot tell ("Tarn" is "turn", but on or off?) the alternatives
    hold both, each a command Home Assistant understands, at most ALTERNATIVES of them."""
    heard = "Tarn the Quillhaven fan."
    assert commands.match(heard, HOME).outcome == "heard"  # unsure on words alone
    found = commands.alternatives(heard, HOME)
    assert 2 <= len(found) <= ALTERNATIVES
    texts = [m.text for m in found]
    assert {"HassTurnOn", "HassTurnOff"} <= {m.intent for m in found}, texts
    assert all(commands.recognize(t, HOME) for t in texts)
    assert all("Quillhaven fan" in t for t in texts)
    # A name misheard past recognition, placed by Home Assistant's own words around it.
    placed = commands.alternatives("What is the temperature in brindle top?", HOME)
    assert "What is the temperature in Brindlethorpe." in [m.text for m in placed]


def test_no_alternatives_for_a_command_or_without_a_name(commands: Commands) -> None:
    """Nothing for the audio to choose (and no decoder pass paid): a command already, speech
    with no name of the home near, no names at all. Speech that sounds near a name may get
    alternatives: the audio keeps it (HEARD_MARGIN, chosen on the bench's speech)."""
    assert commands.alternatives("Turn on the Plantuary lamp.", HOME) == []
    assert commands.alternatives("Add milk to my shopping list.", HOME) == []
    assert commands.alternatives("Tarn the Quillhaven fan.", Home()) == []


def test_the_audio_chooses_unless_the_words_as_heard_fit_it_far_better() -> None:
    """Fits are (summed log-probability, tokens): the heard words' first, then each
    alternative's."""
    heard = Match("Tarn the fan.", "heard")
    on = Match("Turn on the fan.", "rewritten", "HassTurnOn")
    off = Match("Turn off the fan.", "rewritten", "HassTurnOff")
    assert choose(heard, [on, off], [(-20.0, 5), (-24.0, 5), (-22.0, 5)]) == off
    assert choose(heard, [on, off], [(-5.0, 5), (-5.0 - HEARD_MARGIN - 1, 5), (-30.0, 5)]) == heard
    assert choose(heard, [on, off], [(-5.0, 5), (-5.0 - HEARD_MARGIN + 1, 5), (-30.0, 5)]) == on
    assert choose(heard, [], [(-5.0, 5)]) == heard
    assert choose(heard, [on], [(-5.0, 5)]) == heard  # (a fit missing: nothing chosen)


def test_among_the_alternatives_the_audio_chooses_per_token() -> None:
    """A longer name costs more tokens: per token, the name said wins over a short one that
    only sums higher ("Set the Kitchen brightness" was chosen for "Quorradine" by the sum)."""
    heard = Match("Set the Quillhaven brightness to 25%.", "heard")
    said = Match("Set the Quorradine brightness to 25%.", "rewritten", "HassLightSet")
    short = Match("Set the Kitchen brightness to 25%.", "rewritten", "HassLightSet")
    scores = [(-20.0, 12), (-19.0, 12), (-18.0, 9)]  # per token: -1.58 against -2.0
    assert choose(heard, [said, short], scores) == said
    assert choose(heard, [short, said], [scores[0], scores[2], scores[1]]) == said


# --- hassil's patterns in RE2 (linear_patterns.py) -----------------------------------------------


def test_the_hassil_installed_is_one_the_patterns_were_checked_with() -> None:
    """linear_patterns.py swaps hassil's ``Sentence.pattern``: an upgrade past the checked
    releases must fail here first (and the server then keeps re, saying so)."""
    assert checked(version("hassil")), version("hassil")
    assert checked("2.2.3") and not checked("3.0.0") and not checked("2.1.9")


def test_re2_patterns_match_where_hassil_s_own_did(commands: Commands) -> None:
    """Every English template got an RE2 pattern, and it says match or no match as Python's re
    (hassil's own compile) does, on commands, near-misses and speech."""
    sentences = [s for i in commands.intents.intents.values() for d in i.data for s in d.sentences]
    assert sentences and not any(isinstance(s.pattern, re.Pattern) for s in sentences)
    texts = [
        "turn on the plantuary lamp",
        "what is the temperature in the kitchen",
        "set the brightness in cubbyhaven to 35%",
        "what is the capital of australia",
        "remind me to water the plants on sunday",
        "is the front door locked",
        "TURN OFF THE LIGHTS IN THE SNUG",
        "",
    ]
    for sentence in sentences:
        python = re.compile(sentence.pattern.pattern[len("(?i)") :], re.IGNORECASE)
        for text in texts:
            assert (sentence.pattern.match(text) is None) == (python.match(text) is None), (
                sentence.text,
                text,
            )


def test_the_sentences_status_says_what_each_language_is() -> None:
    """/health shows it: a deployment (and the Home Assistant test) can wait for the sentences
    instead of guessing; a language Home Assistant has no sentences for says so."""
    assist = Assist()
    assert assist.status() == {}
    assist.load("zz")
    assert assist.status() == {"zz": "none"}
