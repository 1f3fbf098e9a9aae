"""Result -> OpenAI's response formats: pure functions, no server."""

from __future__ import annotations

import pytest

from wyoming_whisper.backends.base import Result, Segment, Word
from wyoming_whisper.formats import render, timestamp, to_srt, to_verbose_json, to_vtt

pytestmark = pytest.mark.smoke  # also run on Python 3.12 and 3.13 (.ci/run)


def _result(task: str = "transcribe") -> Result:
    seg0 = Segment(
        id=0,
        seek=0,
        start=0.0,
        end=2.5,
        text=" Hello there.",
        tokens=(50363, 15947),
        temperature=0.2,
        avg_logprob=-0.3,
        compression_ratio=1.1,
        no_speech_prob=0.01,
        words=(Word(" Hello", 0.0, 0.8, 0.9), Word(" there.", 0.9, 2.5, 0.8)),
    )
    seg1 = Segment(id=1, seek=250, start=3661.5004, end=3663.0, text=" Second line")
    blank = Segment(id=2, seek=500, start=3663.0, end=3664.0, text="  ")
    return Result(
        text="Hello there. Second line",
        language="de",
        duration=3664.0,
        segments=(seg0, seg1, blank),
        task=task,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("seconds", "srt", "vtt"),
    [
        (0.0, "00:00:00,000", "00:00:00.000"),
        (1.2345, "00:00:01,234", "00:00:01.234"),
        (59.9996, "00:01:00,000", "00:01:00.000"),
        (3661.5, "01:01:01,500", "01:01:01.500"),
        (-0.2, "00:00:00,000", "00:00:00.000"),
        (360000.0, "100:00:00,000", "100:00:00.000"),
    ],
)
def test_timestamps(seconds: float, srt: str, vtt: str) -> None:
    assert timestamp(seconds, ",") == srt
    assert timestamp(seconds, ".") == vtt


def test_srt_numbers_cues_from_one_and_skips_blank_segments() -> None:
    assert to_srt(_result()) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n"
        "2\n01:01:01,500 --> 01:01:03,000\nSecond line\n\n"
    )


def test_vtt_has_header_and_dot_milliseconds() -> None:
    assert to_vtt(_result()) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.500\nHello there.\n\n"
        "01:01:01.500 --> 01:01:03.000\nSecond line\n"
    )


def test_empty_result_formats() -> None:
    empty = Result(text="", language="en", duration=1.0)
    assert to_srt(empty) == ""
    assert to_vtt(empty) == "WEBVTT\n\n"
    assert render(empty, "text").text == "\n"
    assert render(empty, "json").data == {"text": "", "usage": {"type": "duration", "seconds": 1}}


def test_verbose_json_fields_language_name_and_flat_words() -> None:
    body = to_verbose_json(_result(), words=True)
    assert body["task"] == "transcribe"
    assert body["language"] == "german"
    assert body["duration"] == 3664.0
    assert body["text"] == "Hello there. Second line"
    seg = body["segments"][0]
    assert set(seg) == {
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
    }
    assert seg["tokens"] == [50363, 15947]
    assert seg["temperature"] == 0.2
    assert seg["text"] == " Hello there."
    assert body["words"] == [
        {"word": "Hello", "start": 0.0, "end": 0.8},
        {"word": "there.", "start": 0.9, "end": 2.5},
    ]


def test_translation_reports_english() -> None:
    assert to_verbose_json(_result("translate"))["language"] == "english"
    assert to_verbose_json(_result("translate"))["task"] == "translate"


def test_granularities_select_segments_and_words() -> None:
    default = render(_result(), "verbose_json").data
    assert default is not None and "segments" in default and "words" not in default
    words_only = render(_result(), "verbose_json", granularities=frozenset({"word"})).data
    assert words_only is not None and "words" in words_only and "segments" not in words_only
    both = render(_result(), "verbose_json", granularities=frozenset({"word", "segment"})).data
    assert both is not None and "words" in both and "segments" in both


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("json", "application/json"),
        ("verbose_json", "application/json"),
        ("text", "text/plain"),
        ("srt", "text/plain"),
        ("vtt", "text/plain"),
    ],
)
def test_render_content_types(fmt: str, content_type: str) -> None:
    rendered = render(_result(), fmt)
    assert rendered.content_type == content_type
    assert (rendered.data is None) == (content_type == "text/plain")
