"""Spoken commands for Home Assistant's Assist (stt -> intent) and sentences that are no command,
for bench/assist.py: the entities, areas and floors they name (most in no dictionary), what each
command must do, rendered once with espeak-ng and Debian's festival voices (rotated), kept as
16 kHz mono FLAC with 0.3 s of silence before and 1 s after the words.

    python tests/data/assist/build.py      (needs espeak-ng, festival, festvox-kallpc16k,
                                            festvox-kdlpc16k, festvox-us-slt-hts; rewrites the
                                            FLACs and MANIFEST.tsv here)

MANIFEST.tsv columns:
  relpath, voice, kind (command | free), text (the words spoken), intent (the one the default
  agent of home-assistant-intents 2025.3.28 matches for ``text``), target (entity ids, comma
  separated; ``sensor.bench_timers`` for timers), name (the entity, alias, area, floor or timer
  name spoken; empty where none is), before (set on every target before the clip plays:
  ``key=value;...`` or ``say=TEXT``, a command sent as text first), expect (checked afterwards:
  ``key=value`` on each target's state (``state``) or attribute (``brightness_pct`` is
  brightness in percent, rounded), ``speech~WORD`` in the intent's spoken answer,
  ``response=TYPE`` the answer's response_type), duration, sha256, license.
Free sentences (kind free) must change nothing: bench/assist.py compares every bench entity
before and after.
"""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

FLOORS = ("Tessalind", "Ground floor")
# area name -> (floor, aliases)
AREAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Brindlethorpe": ("Tessalind", ()),
    "Snug": ("Tessalind", ("Cubbyhaven",)),
    "Quorradine": ("Ground floor", ()),
    "Kitchen": ("Ground floor", ()),
}
# entity_id -> (name, area or "", aliases, options for the bench_devices integration)
ENTITIES: dict[str, tuple[str, str, tuple[str, ...], dict[str, object]]] = {
    "light.plantuary_lamp": ("Plantuary lamp", "Brindlethorpe", (), {}),
    "light.vasselhoff_porch_light": ("Vasselhoff porch light", "Quorradine", (), {}),
    "light.glimmerholt_strip": ("Glimmerholt strip", "Snug", (), {}),
    "light.orrindale_pendant": ("Orrindale pendant", "Quorradine", ("Lumisette",), {}),
    "light.kitchen_light": ("Kitchen light", "Kitchen", (), {}),
    "switch.oberlyn_kettle": ("Oberlyn kettle", "Kitchen", (), {}),
    "switch.zephyrine_heater": ("Zephyrine heater", "Snug", (), {}),
    "switch.coffee_maker": ("Coffee maker", "Kitchen", (), {}),
    "fan.quillhaven_fan": ("Quillhaven fan", "Brindlethorpe", (), {}),
    "fan.drossmere_fan": ("Drossmere fan", "Quorradine", (), {}),
    "cover.tarnwick_blinds": ("Tarnwick blinds", "Brindlethorpe", (), {"device_class": "blind"}),
    "cover.pellingford_shutters": ("Pellingford shutters", "Snug", (), {"device_class": "shutter"}),
    "cover.garage_door": ("Garage door", "", (), {"device_class": "garage"}),
    "lock.halvering_door": ("Halvering door", "", (), {}),
    "lock.mossbury_gate": ("Mossbury gate", "", (), {}),
    "lock.front_door": ("Front door", "", (), {}),
    "climate.ravensquill_thermostat": (
        "Ravensquill thermostat", "Brindlethorpe", (), {"current_temperature": 17}
    ),
    "climate.ecobee": ("Ecobee", "Snug", (), {"current_temperature": 26}),
    "media_player.marigoldia_speaker": ("Marigoldia speaker", "Snug", (), {}),
    "media_player.corvanta_tv": ("Corvanta TV", "Quorradine", ("Telly",), {}),
}  # fmt: skip
TIMERS = "sensor.bench_timers"  # what the bench's timer device saw (not exposed to Assist)
TIMER_NAMES = ("Crumbleton", "Skellerup", "Wendlebury", "Pofflewick")

L_PLANT, L_PORCH, L_STRIP = (
    "light.plantuary_lamp",
    "light.vasselhoff_porch_light",
    "light.glimmerholt_strip",
)
L_PEND, L_KITCHEN = "light.orrindale_pendant", "light.kitchen_light"
S_KETTLE, S_HEATER, S_COFFEE = (
    "switch.oberlyn_kettle",
    "switch.zephyrine_heater",
    "switch.coffee_maker",
)
F_QUILL, F_DROSS = "fan.quillhaven_fan", "fan.drossmere_fan"
C_BLINDS, C_SHUTTERS, C_GARAGE = (
    "cover.tarnwick_blinds",
    "cover.pellingford_shutters",
    "cover.garage_door",
)
K_HALV, K_MOSS, K_FRONT = "lock.halvering_door", "lock.mossbury_gate", "lock.front_door"
T_RAVEN, T_ECO = "climate.ravensquill_thermostat", "climate.ecobee"
M_SPEAKER, M_TV = "media_player.marigoldia_speaker", "media_player.corvanta_tv"
ON, OFF = ("state=off", "state=on"), ("state=on", "state=off")  # (before, expect)


def _onoff(text: str, target: str, name: str, on: bool, intent: str = "") -> tuple[str, ...]:
    before, expect = ON if on else OFF
    return (text, intent or ("HassTurnOn" if on else "HassTurnOff"), target, name, before, expect)


# (text, intent, target, name, before, expect)
COMMANDS: list[tuple[str, ...]] = [
    # lights on/off, by name, alias, area, floor
    _onoff("Turn on the Plantuary lamp", L_PLANT, "Plantuary lamp", True),
    _onoff("Switch off the Plantuary lamp", L_PLANT, "Plantuary lamp", False),
    _onoff("Turn the Plantuary lamp on", L_PLANT, "Plantuary lamp", True),
    _onoff("Turn on the Vasselhoff porch light", L_PORCH, "Vasselhoff porch light", True),
    _onoff("Turn off the Vasselhoff porch light", L_PORCH, "Vasselhoff porch light", False),
    _onoff("Switch on the Vasselhoff porch light", L_PORCH, "Vasselhoff porch light", True),
    _onoff("Switch on the Glimmerholt strip", L_STRIP, "Glimmerholt strip", True),
    _onoff("Turn the Glimmerholt strip off", L_STRIP, "Glimmerholt strip", False),
    _onoff("Turn off the Glimmerholt strip", L_STRIP, "Glimmerholt strip", False),
    _onoff("Turn on the Orrindale pendant", L_PEND, "Orrindale pendant", True),
    _onoff("Turn off the Orrindale pendant", L_PEND, "Orrindale pendant", False),
    _onoff("Turn on Lumisette", L_PEND, "Lumisette", True),
    _onoff("Switch off Lumisette", L_PEND, "Lumisette", False),
    _onoff("Turn on the kitchen light", L_KITCHEN, "Kitchen light", True),
    _onoff("Turn off the kitchen light", L_KITCHEN, "Kitchen light", False),
    _onoff("Turn on the lights in Brindlethorpe", L_PLANT, "Brindlethorpe", True),
    _onoff("Turn off the lights in Brindlethorpe", L_PLANT, "Brindlethorpe", False),
    _onoff("Turn on the lights in the Quorradine", f"{L_PORCH},{L_PEND}", "Quorradine", True),
    _onoff("Turn off the lights in the Quorradine", f"{L_PORCH},{L_PEND}", "Quorradine", False),
    _onoff("Turn off the lights in the Snug", L_STRIP, "Snug", False),
    _onoff("Turn on the lights in Cubbyhaven", L_STRIP, "Cubbyhaven", True),
    _onoff("Turn off the lights in Cubbyhaven", L_STRIP, "Cubbyhaven", False),
    _onoff("Turn on the lights on the Tessalind floor", f"{L_PLANT},{L_STRIP}", "Tessalind", True),
    _onoff("Turn off the lights on the Tessalind floor", f"{L_PLANT},{L_STRIP}", "Tessalind", False),
    _onoff("Turn on the lights in the kitchen", L_KITCHEN, "Kitchen", True),
    # brightness
    ("Set the Plantuary lamp brightness to 50%", "HassLightSet", L_PLANT, "Plantuary lamp",
     "state=on;brightness_pct=100", "state=on;brightness_pct=50"),
    ("Change the Plantuary lamp to 10%", "HassLightSet", L_PLANT, "Plantuary lamp",
     "state=on;brightness_pct=100", "state=on;brightness_pct=10"),
    ("Set the Vasselhoff porch light to 30%", "HassLightSet", L_PORCH, "Vasselhoff porch light",
     "state=on;brightness_pct=100", "state=on;brightness_pct=30"),
    ("Set the brightness of the Orrindale pendant to 75%", "HassLightSet", L_PEND,
     "Orrindale pendant", "state=on;brightness_pct=20", "state=on;brightness_pct=75"),
    ("Set Lumisette to 40% brightness", "HassLightSet", L_PEND, "Lumisette",
     "state=on;brightness_pct=100", "state=on;brightness_pct=40"),
    ("Turn up the Glimmerholt strip to 90%", "HassLightSet", L_STRIP, "Glimmerholt strip",
     "state=on;brightness_pct=20", "state=on;brightness_pct=90"),
    ("Set the Glimmerholt strip brightness to 60%", "HassLightSet", L_STRIP,
     "Glimmerholt strip", "state=on;brightness_pct=100", "state=on;brightness_pct=60"),
    ("Set the kitchen light brightness to 100%", "HassLightSet", L_KITCHEN, "Kitchen light",
     "state=on;brightness_pct=20", "state=on;brightness_pct=100"),
    ("Set the brightness in Brindlethorpe to 60%", "HassLightSet", L_PLANT, "Brindlethorpe",
     "state=on;brightness_pct=100", "state=on;brightness_pct=60"),
    ("Set the Quorradine brightness to 25%", "HassLightSet", f"{L_PORCH},{L_PEND}", "Quorradine",
     "state=on;brightness_pct=100", "state=on;brightness_pct=25"),
    ("Set the brightness in Cubbyhaven to 35%", "HassLightSet", L_STRIP, "Cubbyhaven",
     "state=on;brightness_pct=100", "state=on;brightness_pct=35"),
    # switches
    _onoff("Turn on the Oberlyn kettle", S_KETTLE, "Oberlyn kettle", True),
    _onoff("Turn off the Oberlyn kettle", S_KETTLE, "Oberlyn kettle", False),
    _onoff("Switch on the Oberlyn kettle", S_KETTLE, "Oberlyn kettle", True),
    _onoff("Turn on the Zephyrine heater", S_HEATER, "Zephyrine heater", True),
    _onoff("Turn the Zephyrine heater off", S_HEATER, "Zephyrine heater", False),
    _onoff("Switch off the Zephyrine heater", S_HEATER, "Zephyrine heater", False),
    _onoff("Turn on the coffee maker", S_COFFEE, "Coffee maker", True),
    _onoff("Turn off the coffee maker", S_COFFEE, "Coffee maker", False),
    # fans
    _onoff("Turn on the Quillhaven fan", F_QUILL, "Quillhaven fan", True),
    _onoff("Turn off the Quillhaven fan", F_QUILL, "Quillhaven fan", False),
    _onoff("Switch the Quillhaven fan on", F_QUILL, "Quillhaven fan", True),
    _onoff("Turn on the Drossmere fan", F_DROSS, "Drossmere fan", True),
    _onoff("Switch off the Drossmere fan", F_DROSS, "Drossmere fan", False),
    _onoff("Turn on the fan in Brindlethorpe", F_QUILL, "Brindlethorpe", True),
    _onoff("Turn off the fans in the Quorradine", F_DROSS, "Quorradine", False),
    # covers
    ("Open the Tarnwick blinds", "HassTurnOn", C_BLINDS, "Tarnwick blinds", "state=closed", "state=open"),
    ("Close the Tarnwick blinds", "HassTurnOff", C_BLINDS, "Tarnwick blinds", "state=open", "state=closed"),
    ("Raise the Tarnwick blinds", "HassTurnOn", C_BLINDS, "Tarnwick blinds", "state=closed", "state=open"),
    ("Open the Pellingford shutters", "HassTurnOn", C_SHUTTERS, "Pellingford shutters", "state=closed", "state=open"),
    ("Close the Pellingford shutters", "HassTurnOff", C_SHUTTERS, "Pellingford shutters", "state=open", "state=closed"),
    ("Lower the Pellingford shutters", "HassTurnOff", C_SHUTTERS, "Pellingford shutters", "state=open", "state=closed"),
    ("Open the garage door", "HassTurnOn", C_GARAGE, "Garage door", "state=closed", "state=open"),
    ("Close the garage door", "HassTurnOff", C_GARAGE, "Garage door", "state=open", "state=closed"),
    ("Set the Tarnwick blinds to 50%", "HassSetPosition", C_BLINDS, "Tarnwick blinds",
     "current_position=0", "current_position=50"),
    ("Open the Tarnwick blinds to 75%", "HassSetPosition", C_BLINDS, "Tarnwick blinds",
     "current_position=0", "current_position=75"),
    ("Set the Pellingford shutters position to 30%", "HassSetPosition", C_SHUTTERS,
     "Pellingford shutters", "current_position=100", "current_position=30"),
    ("Close the Pellingford shutters to 20%", "HassSetPosition", C_SHUTTERS,
     "Pellingford shutters", "current_position=100", "current_position=20"),
    ("Open the blinds in Brindlethorpe", "HassTurnOn", C_BLINDS, "Brindlethorpe", "state=closed", "state=open"),
    ("Close the shutters in the Snug", "HassTurnOff", C_SHUTTERS, "Snug", "state=open", "state=closed"),
    ("Is the garage door open", "HassGetState", C_GARAGE, "Garage door", "state=open",
     "response=query_answer;speech~yes"),
    ("Are the Tarnwick blinds closed", "HassGetState", C_BLINDS, "Tarnwick blinds",
     "state=open", "response=query_answer;speech~no"),
    ("Is the Pellingford shutters open", "HassGetState", C_SHUTTERS, "Pellingford shutters",
     "state=open", "response=query_answer;speech~yes"),
    # locks
    ("Lock the Halvering door", "HassTurnOn", K_HALV, "Halvering door", "state=unlocked", "state=locked"),
    ("Unlock the Halvering door", "HassTurnOff", K_HALV, "Halvering door", "state=locked", "state=unlocked"),
    ("Lock the Mossbury gate", "HassTurnOn", K_MOSS, "Mossbury gate", "state=unlocked", "state=locked"),
    ("Unlock the Mossbury gate", "HassTurnOff", K_MOSS, "Mossbury gate", "state=locked", "state=unlocked"),
    ("Lock the front door", "HassTurnOn", K_FRONT, "Front door", "state=unlocked", "state=locked"),
    ("Unlock the front door", "HassTurnOff", K_FRONT, "Front door", "state=locked", "state=unlocked"),
    ("Is the Mossbury gate locked", "HassGetState", K_MOSS, "Mossbury gate", "state=locked",
     "response=query_answer;speech~yes"),
    ("Is the Halvering door unlocked", "HassGetState", K_HALV, "Halvering door", "state=locked",
     "response=query_answer;speech~no"),
    ("Is the front door locked", "HassGetState", K_FRONT, "Front door", "state=unlocked",
     "response=query_answer;speech~no"),
    # climate
    ("Set the Ravensquill thermostat to 21 degrees", "HassClimateSetTemperature", T_RAVEN,
     "Ravensquill thermostat", "temperature=18", "temperature=21"),
    ("Set the temperature of the Ravensquill thermostat to 23 degrees",
     "HassClimateSetTemperature", T_RAVEN, "Ravensquill thermostat", "temperature=18",
     "temperature=23"),
    ("Set the temperature in Brindlethorpe to 19 degrees", "HassClimateSetTemperature", T_RAVEN,
     "Brindlethorpe", "temperature=22", "temperature=19"),
    ("Set the Ecobee to 20 degrees", "HassClimateSetTemperature", T_ECO, "Ecobee",
     "temperature=17", "temperature=20"),
    ("Set the temperature of the Ecobee to 18 degrees", "HassClimateSetTemperature", T_ECO,
     "Ecobee", "temperature=22", "temperature=18"),
    ("Set the Snug temperature to 22 degrees", "HassClimateSetTemperature", T_ECO, "Snug",
     "temperature=17", "temperature=22"),
    ("Set the temperature in Cubbyhaven to 24 degrees", "HassClimateSetTemperature", T_ECO,
     "Cubbyhaven", "temperature=17", "temperature=24"),
    ("What is the temperature in Brindlethorpe", "HassClimateGetTemperature", T_RAVEN,
     "Brindlethorpe", "", "response=query_answer;speech~17"),
    ("What is the temperature of the Ravensquill thermostat", "HassClimateGetTemperature",
     T_RAVEN, "Ravensquill thermostat", "", "response=query_answer;speech~17"),
    ("What's the temperature of the Ecobee", "HassClimateGetTemperature", T_ECO, "Ecobee", "",
     "response=query_answer;speech~26"),
    ("What is the temperature in Cubbyhaven", "HassClimateGetTemperature", T_ECO, "Cubbyhaven",
     "", "response=query_answer;speech~26"),
    # media players
    ("Pause the Marigoldia speaker", "HassMediaPause", M_SPEAKER, "Marigoldia speaker",
     "state=playing", "state=paused"),
    ("Pause the Corvanta TV", "HassMediaPause", M_TV, "Corvanta TV", "state=playing", "state=paused"),
    ("Pause the music in the Snug", "HassMediaPause", M_SPEAKER, "Snug", "state=playing", "state=paused"),
    ("Pause Telly", "HassMediaPause", M_TV, "Telly", "state=playing", "state=paused"),
    ("Resume the Marigoldia speaker", "HassMediaUnpause", M_SPEAKER, "Marigoldia speaker",
     "state=paused", "state=playing"),
    ("Unpause the Corvanta TV", "HassMediaUnpause", M_TV, "Corvanta TV", "state=paused", "state=playing"),
    ("Resume the music in the Quorradine", "HassMediaUnpause", M_TV, "Quorradine",
     "state=paused", "state=playing"),
    ("Next track on the Marigoldia speaker", "HassMediaNext", M_SPEAKER, "Marigoldia speaker",
     "state=playing;media_track=1", "media_track=2"),
    ("Skip to the next song on the Marigoldia speaker", "HassMediaNext", M_SPEAKER,
     "Marigoldia speaker", "state=playing;media_track=1", "media_track=2"),
    ("Next track on the Corvanta TV", "HassMediaNext", M_TV, "Corvanta TV",
     "state=playing;media_track=1", "media_track=2"),
    ("Set the Marigoldia speaker volume to 30%", "HassSetVolume", M_SPEAKER,
     "Marigoldia speaker", "state=playing;volume_level=0.8", "volume_level=0.3"),
    ("Set the volume to 60% on the Corvanta TV", "HassSetVolume", M_TV, "Corvanta TV",
     "state=playing;volume_level=0.2", "volume_level=0.6"),
    ("Turn the Marigoldia speaker down to 20%", "HassSetVolume", M_SPEAKER, "Marigoldia speaker",
     "state=playing;volume_level=0.8", "volume_level=0.2"),
    ("Set the Snug volume to 40%", "HassSetVolume", M_SPEAKER, "Snug",
     "state=playing;volume_level=0.8", "volume_level=0.4"),
    ("Set the Telly volume to 50%", "HassSetVolume", M_TV, "Telly",
     "state=playing;volume_level=0.2", "volume_level=0.5"),
    _onoff("Turn off the Corvanta TV", M_TV, "Corvanta TV", False),
    _onoff("Turn on the Corvanta TV", M_TV, "Corvanta TV", True),
    _onoff("Turn off the Marigoldia speaker", M_SPEAKER, "Marigoldia speaker", False),
    # questions about a device
    ("Is the Plantuary lamp on", "HassGetState", L_PLANT, "Plantuary lamp", "state=on",
     "response=query_answer;speech~yes"),
    ("Is the Oberlyn kettle off", "HassGetState", S_KETTLE, "Oberlyn kettle", "state=off",
     "response=query_answer;speech~yes"),
    ("Is the Zephyrine heater on", "HassGetState", S_HEATER, "Zephyrine heater", "state=off",
     "response=query_answer;speech~no"),
    ("Is the Vasselhoff porch light off", "HassGetState", L_PORCH, "Vasselhoff porch light",
     "state=on", "response=query_answer;speech~no"),
    ("Is Lumisette on", "HassGetState", L_PEND, "Lumisette", "state=on",
     "response=query_answer;speech~yes"),
    ("What is the state of the Quillhaven fan", "HassGetState", F_QUILL, "Quillhaven fan",
     "state=on", "response=query_answer;speech~on"),
    ("Is the Drossmere fan on", "HassGetState", F_DROSS, "Drossmere fan", "state=off",
     "response=query_answer;speech~no"),
    ("Is the Glimmerholt strip on", "HassGetState", L_STRIP, "Glimmerholt strip", "state=on",
     "response=query_answer;speech~yes"),
    ("Are there any lights on in Brindlethorpe", "HassGetState", L_PLANT, "Brindlethorpe",
     "state=on", "response=query_answer;speech~yes"),
    ("Is the coffee maker on", "HassGetState", S_COFFEE, "Coffee maker", "state=off",
     "response=query_answer;speech~no"),
    # timers (on the bench's timer device)
    ("Set a timer for 5 minutes", "HassStartTimer", TIMERS, "", "",
     "last_event=started;last_seconds=300"),
    ("Set a timer for 10 minutes named Crumbleton", "HassStartTimer", TIMERS, "Crumbleton", "",
     "last_event=started;last_name=crumbleton;last_seconds=600"),
    ("Start a 3 minute timer for Skellerup", "HassStartTimer", TIMERS, "Skellerup", "",
     "last_event=started;last_name=skellerup;last_seconds=180"),
    ("Set a timer for 2 minutes called Wendlebury", "HassStartTimer", TIMERS, "Wendlebury", "",
     "last_event=started;last_name=wendlebury;last_seconds=120"),
    ("Start a 15 minute timer for Pofflewick", "HassStartTimer", TIMERS, "Pofflewick", "",
     "last_event=started;last_name=pofflewick;last_seconds=900"),
    ("Cancel the Crumbleton timer", "HassCancelTimer", TIMERS, "Crumbleton",
     "say=Set a timer for 10 minutes named Crumbleton",
     "last_event=cancelled;last_name=crumbleton"),
    ("Cancel the Skellerup timer", "HassCancelTimer", TIMERS, "Skellerup",
     "say=Set a timer for 4 minutes named Skellerup",
     "last_event=cancelled;last_name=skellerup"),
    ("Stop my timer", "HassCancelTimer", TIMERS, "", "say=Set a timer for 6 minutes",
     "last_event=cancelled"),
    ("Pause the Wendlebury timer", "HassPauseTimer", TIMERS, "Wendlebury",
     "say=Set a timer for 8 minutes called Wendlebury",
     "last_event=updated;last_name=wendlebury;last_active=False"),
    ("How much time is left on the Pofflewick timer", "HassTimerStatus", TIMERS, "Pofflewick",
     "say=Set a timer for 20 minutes named Pofflewick", "speech~minutes"),
    # more ways people say them
    _onoff("Plantuary lamp off", L_PLANT, "Plantuary lamp", False),
    _onoff("Turn off the Orrindale pendant in the Quorradine", L_PEND, "Orrindale pendant", False),
    _onoff("Turn on the Glimmerholt strip in the Snug", L_STRIP, "Glimmerholt strip", True),
    _onoff("Lights off in the Quorradine", f"{L_PORCH},{L_PEND}", "Quorradine", False),
    _onoff("Please turn on the Vasselhoff porch light", L_PORCH, "Vasselhoff porch light", True),
    _onoff("Switch on the Zephyrine heater in the Snug", S_HEATER, "Zephyrine heater", True),
    _onoff("Turn on the Oberlyn kettle in the kitchen", S_KETTLE, "Oberlyn kettle", True),
    _onoff("Could you turn off the coffee maker", S_COFFEE, "Coffee maker", False),
    _onoff("Please turn on the Drossmere fan", F_DROSS, "Drossmere fan", True),
    _onoff("Turn off the Drossmere fan", F_DROSS, "Drossmere fan", False),
    _onoff("Turn on the fans in the Quorradine", F_DROSS, "Quorradine", True),
    _onoff("Turn on the Marigoldia speaker", M_SPEAKER, "Marigoldia speaker", True),
    ("Please lock the Halvering door", "HassTurnOn", K_HALV, "Halvering door", "state=unlocked", "state=locked"),
    ("Please unlock the Mossbury gate", "HassTurnOff", K_MOSS, "Mossbury gate", "state=locked", "state=unlocked"),
    ("Shut the Tarnwick blinds", "HassTurnOff", C_BLINDS, "Tarnwick blinds", "state=open", "state=closed"),
    ("Open the shutters in the Snug", "HassTurnOn", C_SHUTTERS, "Snug", "state=closed", "state=open"),
    ("Set the Tarnwick blinds position to 25%", "HassSetPosition", C_BLINDS, "Tarnwick blinds",
     "current_position=100", "current_position=25"),
    ("Set the Ecobee temperature to 21 degrees", "HassClimateSetTemperature", T_ECO, "Ecobee",
     "temperature=17", "temperature=21"),
    ("What is the temperature in the Snug", "HassClimateGetTemperature", T_ECO, "Snug", "",
     "response=query_answer;speech~26"),
    ("Resume Telly", "HassMediaUnpause", M_TV, "Telly", "state=paused", "state=playing"),
    ("Pause the music in Cubbyhaven", "HassMediaPause", M_SPEAKER, "Cubbyhaven", "state=playing",
     "state=paused"),
    ("Skip this song on Telly", "HassMediaNext", M_TV, "Telly", "state=playing;media_track=1",
     "media_track=2"),
    ("Next track in the Snug", "HassMediaNext", M_SPEAKER, "Snug", "state=playing;media_track=1",
     "media_track=2"),
    ("Set the brightness of Lumisette to 15%", "HassLightSet", L_PEND, "Lumisette",
     "state=on;brightness_pct=100", "state=on;brightness_pct=15"),
    ("Set the Vasselhoff porch light brightness to 80%", "HassLightSet", L_PORCH,
     "Vasselhoff porch light", "state=on;brightness_pct=20", "state=on;brightness_pct=80"),
    ("Are there any lights on in the Quorradine", "HassGetState", f"{L_PORCH},{L_PEND}",
     "Quorradine", "state=off", "response=query_answer;speech~no"),
    ("Is the kitchen light on", "HassGetState", L_KITCHEN, "Kitchen light", "state=off",
     "response=query_answer;speech~no"),
    ("Set a 20 minute timer", "HassStartTimer", TIMERS, "", "",
     "last_event=started;last_seconds=1200"),
    ("Set a timer for 90 seconds named Crumbleton", "HassStartTimer", TIMERS, "Crumbleton", "",
     "last_event=started;last_name=crumbleton;last_seconds=90"),
    ("Cancel the Wendlebury timer", "HassCancelTimer", TIMERS, "Wendlebury",
     "say=Set a timer for 5 minutes called Wendlebury",
     "last_event=cancelled;last_name=wendlebury"),
]  # fmt: skip

FREE = (
    "What is the capital of Australia",
    "Tell me a joke about penguins",
    "How far away is the moon",
    "Write a short poem about autumn leaves",
    "Explain how a heat pump works",
    "Add oat milk to my shopping list",
    "Put brown bread and eggs on the shopping list",
    "Add Brindlethorpe honey to the shopping list",
    "Remind me to call the plumber tomorrow morning",
    "Remind me to water the plants on Sunday",
    "I bought the Plantuary lamp at a flea market",
    "The Quillhaven fan makes a strange rattling noise",
    "My sister says the Tarnwick blinds look old fashioned",
    "We should paint the Brindlethorpe walls green next spring",
    "The Oberlyn kettle was a wedding present from my aunt",
    "Did you know the Marigoldia speaker is waterproof",
    "How do I clean the filter of the Zephyrine heater",
    "What should I cook for dinner tonight",
    "Translate good morning into Spanish",
    "How many days are there until Christmas",
    "Summarize the news about electric cars",
    "The Halvering door squeaks when it is cold outside",
    "Can you recommend a good science fiction book",
    "Who painted the Mona Lisa",
)

# espeak-ng variants and Debian's festival voices, rotated over the clips
VOICES = (
    "espeak:en-us", "festival:voice_kal_diphone", "espeak:en-gb",
    "festival:voice_cmu_us_slt_arctic_hts", "espeak:en-gb-scotland", "festival:voice_ked_diphone",
    "espeak:en-us+f3", "espeak:en+m7", "espeak:en-029",
)  # fmt: skip
COLUMNS = ["relpath", "voice", "kind", "text", "intent", "target", "name", "before", "expect",
           "duration", "sha256", "license"]  # fmt: skip
LICENSE = "CC0-1.0 (text written for this project; synthetic voice)"
RATE = 16000
LEAD, TAIL = 0.3, 1.0  # seconds of silence before and after the words
# Samples rounded to multiples of 64 (10 significant bits, ~60 dB SNR, far above what speech
# recognition needs): FLAC stores the unused low bits for free, the clips take ~55% of the space.
QUANTUM = 64


def speak(voice: str, text: str, wav: Path) -> None:
    engine, name = voice.split(":", 1)
    if engine == "espeak":
        subprocess.run(["espeak-ng", "-v", name, "-s", "155", "-w", str(wav), text], check=True)
    else:
        subprocess.run(
            ["text2wave", "-eval", f"({name})", "-o", str(wav)], input=text.encode(), check=True
        )


def render(voice: str, text: str, flac: Path) -> None:
    """``text`` in ``voice`` -> 16 kHz mono 16-bit FLAC with the silences around it."""
    import av  # the test venv's PyAV, as tests/data/build.py
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        speak(voice, text, wav)
        with wave.open(str(wav)) as w:
            assert w.getnchannels() == 1 and w.getsampwidth() == 2
        pcm = bytearray(b"\x00\x00" * int(LEAD * RATE))
        with av.open(str(wav)) as inp:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            for frame in [*inp.decode(audio=0), None]:
                for out in resampler.resample(frame):
                    pcm += out.to_ndarray().tobytes()
        pcm += b"\x00\x00" * int(TAIL * RATE)
    samples = np.frombuffer(bytes(pcm), dtype="<i2").astype(np.int32)
    samples = (np.round(samples / QUANTUM) * QUANTUM).clip(-32768, 32767).astype("<i2")
    with av.open(str(flac), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=RATE)
        stream.layout = "mono"  # type: ignore[union-attr]
        stream.options = {"compression_level": "12"}
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:  # type: ignore[union-attr]
            out.mux(packet)


def rows() -> list[dict[str, str]]:
    """Every clip's manifest row without duration and hash (what main() renders)."""
    out = []
    clips = [("command", c) for c in COMMANDS] + [("free", (t, "", "", "", "", "")) for t in FREE]
    for i, (kind, (text, intent, target, name, before, expect)) in enumerate(clips):
        out.append(
            {
                "relpath": f"{kind}-{i:03d}.flac",
                "voice": VOICES[i % len(VOICES)],
                "kind": kind,
                "text": text,
                "intent": intent,
                "target": target,
                "name": name,
                "before": before,
                "expect": expect,
                "license": LICENSE,
            }
        )
    return out


def main() -> None:
    from build import duration  # tests/data/build.py

    for old in HERE.glob("*.flac"):
        old.unlink()
    written = []
    for row in rows():
        flac = HERE / row["relpath"]
        render(row["voice"], row["text"], flac)
        row["duration"] = f"{duration(flac):.3f}"
        row["sha256"] = hashlib.sha256(flac.read_bytes()).hexdigest()
        written.append([row[c] for c in COLUMNS])
    with open(HERE / "MANIFEST.tsv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(written)


def load() -> list[dict[str, str]]:
    with open(HERE / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


if __name__ == "__main__":
    main()
