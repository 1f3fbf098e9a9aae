"""The Realtime API's session settings (wyoming_whisper/http/realtime/settings.py), without a
server: the GA and beta shapes of a session update, the defaults, and each fault of shape with
the message, code and param a client sees in its ``error`` event."""

from __future__ import annotations

from typing import Any

import pytest

from wyoming_whisper.http.realtime.settings import (
    EventError,
    Settings,
    TurnDetection,
    parse_session,
    parse_update,
)

GA_EVENT: dict[str, Any] = {
    "type": "session.update",
    "session": {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {"model": "whisper-1", "language": "en", "prompt": "Ecobee"},
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.6,
                    "prefix_padding_ms": 200,
                    "silence_duration_ms": 800,
                },
                "noise_reduction": {"type": "near_field"},
            }
        },
        "include": ["item.input_audio_transcription.logprobs"],
    },
}
BETA_EVENT: dict[str, Any] = {
    "type": "transcription_session.update",
    "session": {
        "input_audio_format": "g711_alaw",
        "input_audio_transcription": {"model": "base", "language": None, "prompt": None},
        "turn_detection": None,
        "input_audio_noise_reduction": {"type": "far_field"},
        "include": [],
    },
}


def ga(**input_fields: Any) -> dict[str, Any]:
    """A GA session whose ``audio.input`` holds ``input_fields``."""
    return {"type": "transcription", "audio": {"input": input_fields}}


def fault(session: Any, *, beta: bool = False) -> tuple[str, str | None, str | None]:
    with pytest.raises(EventError) as info:
        parse_session(Settings(), session, beta=beta, prefix="session")
    err = info.value
    return err.message, err.code, err.param


# --- defaults and the two shapes ------------------------------------------------------------------


def test_a_new_session_is_pcm_with_server_vad() -> None:
    settings = Settings()
    assert (settings.format, settings.model, settings.language, settings.prompt) == (
        "audio/pcm",
        None,
        None,
        "",
    )
    assert settings.turn_detection == TurnDetection()
    shown = settings.as_json("sess_1", beta=False)
    assert shown["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert shown["audio"]["input"]["transcription"] == {
        "model": "whisper-1",
        "language": None,
        "prompt": "",
    }
    assert shown["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
    }
    assert shown["audio"]["input"]["noise_reduction"] is None and shown["include"] == []


def test_an_empty_update_changes_nothing() -> None:
    before = parse_session(Settings(), ga(format={"type": "audio/pcma"}), beta=False, prefix="s")
    assert parse_session(before, {}, beta=False, prefix="session") == before
    assert parse_session(before, {"audio": None}, beta=False, prefix="session") == before
    assert parse_session(before, ga(transcription=None), beta=False, prefix="session") == before
    assert parse_session(before, {}, beta=True, prefix="session") == before


def test_the_ga_shape() -> None:
    settings, beta = parse_update(Settings(), GA_EVENT)
    assert not beta
    assert settings == Settings(
        format="audio/pcmu",
        model="whisper-1",
        language="en",
        prompt="Ecobee",
        turn_detection=TurnDetection(threshold=0.6, prefix_padding_ms=200, silence_duration_ms=800),
        noise_reduction={"type": "near_field"},
        include=("item.input_audio_transcription.logprobs",),
    )
    shown = settings.as_json("sess_1", beta=False)
    assert shown["type"] == "transcription" and shown["id"] == "sess_1"
    assert shown["audio"]["input"]["format"] == {"type": "audio/pcmu"}  # no rate but for PCM
    assert shown["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 800


def test_the_beta_shape() -> None:
    settings, beta = parse_update(Settings(), BETA_EVENT)
    assert beta
    assert settings == Settings(
        format="audio/pcma",
        model="base",
        language=None,
        prompt="",  # null is no prompt
        turn_detection=None,  # the client commits
        noise_reduction={"type": "far_field"},
    )
    shown = settings.as_json("sess_1", beta=True)
    assert shown["input_audio_format"] == "g711_alaw" and shown["turn_detection"] is None
    assert shown["input_audio_transcription"]["model"] == "base"
    assert shown["input_audio_noise_reduction"] == {"type": "far_field"}


def test_beta_fields_under_the_ga_event_name_are_the_beta_shape() -> None:
    event = {"type": "session.update", "session": {"input_audio_format": "g711_ulaw"}}
    settings, beta = parse_update(Settings(), event)
    assert beta and settings.format == "audio/pcmu"
    # With a GA type the same field is not the GA shape's, and so is ignored.
    event["session"] = {"type": "transcription", "input_audio_format": "g711_ulaw"}
    assert parse_update(Settings(), event) == (Settings(), False)


def test_semantic_vad_keeps_its_eagerness_only() -> None:
    detection = {"type": "semantic_vad", "eagerness": "high", "threshold": 2}
    settings = parse_session(Settings(), ga(turn_detection=detection), beta=False, prefix="s")
    assert settings.turn_detection == TurnDetection(type="semantic_vad", eagerness="high")
    assert settings.turn_detection.as_json() == {"type": "semantic_vad", "eagerness": "high"}
    default = parse_session(
        Settings(), ga(turn_detection={"type": "semantic_vad"}), beta=False, prefix="s"
    )
    assert default.turn_detection == TurnDetection(type="semantic_vad", eagerness="auto")


def test_a_turn_detection_field_left_out_or_null_takes_its_default() -> None:
    detection = {"silence_duration_ms": 1200.7, "threshold": None}
    settings = parse_session(Settings(), ga(turn_detection=detection), beta=False, prefix="s")
    assert settings.turn_detection == TurnDetection(silence_duration_ms=1200)


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("session", "message", "param"),
    [
        (
            {"type": "realtime"},
            "this server transcribes only: 'session.type' must be 'transcription', got 'realtime' "
            "(connect with ?intent=transcription)",
            "session.type",
        ),
        (
            {"type": "transcription", "audio": []},
            "'session.audio' must be an object",
            "session.audio",
        ),
        (
            {"audio": {"input": "pcm"}},
            "'session.audio.input' must be an object",
            "session.audio.input",
        ),
        (
            ga(format="audio/pcm"),
            "'session.audio.input.format' must be an object",
            "session.audio.input.format",
        ),
        (
            ga(format={"type": "audio/flac"}),
            "'session.audio.input.format.type' must be audio/pcm, audio/pcmu or audio/pcma, "
            "got 'audio/flac'",
            "session.audio.input.format.type",
        ),
        (  # a list or an object is no format (and no dict key: once a TypeError, a 500)
            ga(format={"type": {}}),
            "'session.audio.input.format.type' must be audio/pcm, audio/pcmu or audio/pcma, got {}",
            "session.audio.input.format.type",
        ),
        (
            ga(format={"type": "audio/pcm", "rate": 16000}),
            "'session.audio.input.format.rate' must be 24000 for audio/pcm",
            "session.audio.input.format.rate",
        ),
        (
            ga(transcription="whisper-1"),
            "'session.audio.input.transcription' must be an object",
            "session.audio.input.transcription",
        ),
        (
            ga(turn_detection=True),
            "'session.audio.input.turn_detection' must be an object",
            "session.audio.input.turn_detection",
        ),
        (
            ga(turn_detection={"type": "push_to_talk"}),
            "'session.audio.input.turn_detection.type' must be 'server_vad' or 'semantic_vad', "
            "got 'push_to_talk'",
            "session.audio.input.turn_detection.type",
        ),
        (
            ga(turn_detection={"type": "semantic_vad", "eagerness": "eager"}),
            "'session.audio.input.turn_detection.eagerness' must be low, medium, high or auto",
            "session.audio.input.turn_detection.eagerness",
        ),
        (
            ga(turn_detection={"threshold": 1.5}),
            "'session.audio.input.turn_detection.threshold' must be a number from 0 to 1",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            ga(turn_detection={"prefix_padding_ms": -1}),
            "'session.audio.input.turn_detection.prefix_padding_ms' must be a number from 0 to "
            "10000",
            "session.audio.input.turn_detection.prefix_padding_ms",
        ),
        (
            ga(turn_detection={"silence_duration_ms": True}),  # a bool is not a number
            "'session.audio.input.turn_detection.silence_duration_ms' must be a number from 0 to "
            "10000",
            "session.audio.input.turn_detection.silence_duration_ms",
        ),
        (
            ga(noise_reduction="near_field"),
            "'session.audio.input.noise_reduction' must be an object",
            "session.audio.input.noise_reduction",
        ),
        (
            {"include": "logprobs"},
            "'session.include' must be a list of strings",
            "include",
        ),
        (
            {"include": [1]},
            "'session.include' must be a list of strings",
            "include",
        ),
    ],
)
def test_each_ga_fault(session: dict[str, Any], message: str, param: str) -> None:
    assert fault(session) == (message, "invalid_value", param)


@pytest.mark.parametrize(
    ("session", "message", "param"),
    [
        (
            {"input_audio_format": "pcm24"},
            "'session.input_audio_format' must be pcm16, g711_ulaw or g711_alaw, got 'pcm24'",
            "session.input_audio_format",
        ),
        (
            {"input_audio_format": ["pcm16"]},
            "'session.input_audio_format' must be pcm16, g711_ulaw or g711_alaw, got ['pcm16']",
            "session.input_audio_format",
        ),
        (
            {"input_audio_transcription": []},
            "'session.input_audio_transcription' must be an object",
            "session.input_audio_transcription",
        ),
        (
            {"turn_detection": {"threshold": "high"}},
            "'session.turn_detection.threshold' must be a number from 0 to 1",
            "session.turn_detection.threshold",
        ),
        (
            {"input_audio_noise_reduction": 1},
            "'session.input_audio_noise_reduction' must be an object",
            "session.input_audio_noise_reduction",
        ),
        (
            {"include": None, "input_audio_format": "pcm16", "turn_detection": "none"},
            "'session.turn_detection' must be an object",
            "session.turn_detection",
        ),
    ],
)
def test_each_beta_fault(session: dict[str, Any], message: str, param: str) -> None:
    assert fault(session, beta=True) == (message, "invalid_value", param)


def test_the_request_fields_are_left_to_build_request() -> None:
    """Model, language and prompt are checked where every door checks them (tests/test_realtime.py
    has the session's answer): here they pass as sent, even a falsy one that is not a string."""
    fields = {"model": 1, "language": ["en"], "prompt": 0}
    settings = parse_session(Settings(), ga(transcription=fields), beta=False, prefix="session")
    assert (settings.model, settings.language, settings.prompt) == (1, ["en"], 0)


def test_the_first_fault_in_reading_order_is_the_one_reported() -> None:
    session = ga(format={"type": "audio/flac"}, turn_detection={"threshold": 9})
    assert fault(session)[2] == "session.audio.input.format.type"
    session = {**ga(turn_detection={"threshold": 9}), "include": 1}
    assert fault(session)[2] == "session.audio.input.turn_detection.threshold"


def test_an_update_whose_session_is_not_an_object() -> None:
    with pytest.raises(EventError) as info:
        parse_update(Settings(), {"type": "session.update", "session": "pcm"})
    err = info.value
    assert (err.message, err.code, err.param) == (
        "'session' must be an object",
        "invalid_value",
        "session",
    )
    with pytest.raises(EventError):
        parse_update(Settings(), {"type": "transcription_session.update"})


# --- every field, every JSON type ----------------------------------------------------------------

ODD_VALUES: tuple[Any, ...] = (None, True, 0, -1, 1e308, "", "x" * 5000, [], [1], {}, {"a": {}})


def _paths(value: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of a JSON object (objects and leaves alike)."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*path, key))
    return found


def _with(event: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    copy: Any = json_copy(event)
    holder = copy
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return copy


def json_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) for v in value]
    return value


@pytest.mark.parametrize("event", [GA_EVENT, BETA_EVENT], ids=["ga", "beta"])
def test_any_json_in_any_field_is_an_event_error_or_accepted(event: dict[str, Any]) -> None:
    """A stranger may put any JSON anywhere: the answer is an ``error`` event naming the field
    (EventError), never an exception the session would have to report as internal."""
    for path in _paths(event):
        if path == ("type",):
            continue  # the event's type picks the handler, before these settings
        for value in ODD_VALUES:
            try:
                parse_update(Settings(), _with(event, path, value))
            except EventError as err:
                assert err.code == "invalid_value" and err.param, (path, value)
