"""A Result in each of OpenAI's response formats: json, text, srt, vtt and verbose_json.

Pure functions, so every front door (and the tests) can format a Result without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .backends.base import Result, Segment
from .languages import language_name

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
# OpenAI answers text, srt and vtt as plain text; the openai SDK returns them as str.
TEXT_CONTENT_TYPE = "text/plain"
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Rendered:
    """A formatted response body: JSON-able data, or text."""

    content_type: str
    data: dict[str, Any] | None = None
    text: str | None = None


def timestamp(seconds: float, decimal: str) -> str:
    """HH:MM:SS,mmm (srt) or HH:MM:SS.mmm (vtt); rounds to the millisecond, clamps at zero."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _cues(result: Result) -> list[Segment]:
    return [s for s in result.segments if s.text.strip()]


def to_srt(result: Result) -> str:
    """SubRip: numbered cues from 1, comma before the milliseconds, a blank line after each."""
    blocks = [
        f"{i}\n{timestamp(s.start, ',')} --> {timestamp(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(_cues(result), start=1)
    ]
    return "\n".join(blocks) + ("\n" if blocks else "")


def to_vtt(result: Result) -> str:
    """WebVTT: the header, then one cue per segment with a dot before the milliseconds."""
    blocks = [
        f"{timestamp(s.start, '.')} --> {timestamp(s.end, '.')}\n{s.text.strip()}\n"
        for s in _cues(result)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_json(result: Result) -> dict[str, Any]:
    return {"text": result.text, "usage": _usage(result)}


def _usage(result: Result) -> dict[str, Any]:
    """OpenAI bills whisper-1 by duration and reports it; clients may read it."""
    return {"type": "duration", "seconds": round(result.duration)}


def segment_json(s: Segment) -> dict[str, Any]:
    """One segment in OpenAI's verbose_json shape (the WebSocket's final uses it too)."""
    return {
        "id": s.id,
        "seek": s.seek,
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "tokens": list(s.tokens),
        "temperature": s.temperature,
        "avg_logprob": s.avg_logprob,
        "compression_ratio": s.compression_ratio,
        "no_speech_prob": s.no_speech_prob,
    }


def to_verbose_json(
    result: Result, *, words: bool = False, segments: bool = True
) -> dict[str, Any]:
    """OpenAI's verbose_json: the language as a full lower-case name, segments, and words.

    A translation's language is the output's, English, as OpenAI reports it.
    """
    language = "english" if result.task == "translate" else language_name(result.language)
    body: dict[str, Any] = {
        "task": result.task,
        "language": language,
        "duration": round(result.duration, 3),
        "text": result.text,
    }
    if segments:
        body["segments"] = [segment_json(s) for s in result.segments]
    if words:
        body["words"] = [
            {"word": w.word.strip(), "start": w.start, "end": w.end}
            for w in result.words
            if w.word.strip()
        ]
    body["usage"] = _usage(result)
    return body


def render(
    result: Result, response_format: str, *, granularities: frozenset[str] = frozenset()
) -> Rendered:
    """Format ``result`` as the client asked; ``response_format`` is already validated."""
    if response_format == "json":
        return Rendered(JSON_CONTENT_TYPE, data=to_json(result))
    if response_format == "verbose_json":
        # OpenAI gives segments unless only words were asked for.
        segments = "segment" in granularities or "word" not in granularities
        data = to_verbose_json(result, words="word" in granularities, segments=segments)
        return Rendered(JSON_CONTENT_TYPE, data=data)
    if response_format == "srt":
        return Rendered(TEXT_CONTENT_TYPE, text=to_srt(result))
    if response_format == "vtt":
        return Rendered(TEXT_CONTENT_TYPE, text=to_vtt(result))
    return Rendered(TEXT_CONTENT_TYPE, text=result.text + "\n")
