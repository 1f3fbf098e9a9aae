"""One transcription request, whichever front door it came in by, checked in one place.

HTTP form fields, WebSocket query parameters and a Wyoming ``transcribe`` event are each turned
into a ``TranscriptionRequest`` by ``build_request``, so the same fault (an unknown model, a
language an English-only model cannot speak, a bad granularity) gets the same error, with the
same code and message, on every door; each door only renders it in its own shape.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from .backends.base import FALLBACK_TEMPERATURES, TranscribeOptions
from .errors import InvalidRequest
from .formats import RESPONSE_FORMATS
from .languages import check_language, normalize_language

Task = Literal["transcribe", "translate"]
GRANULARITIES = frozenset({"word", "segment"})
MAX_PROMPT_CHARS = 4000  # past Whisper's 224-token prompt window (it keeps the end); fits a URL
# The one boolean vocabulary: a request's form fields and query parameters, and the environment.
TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off", ""})


@dataclass(frozen=True)
class TranscriptionRequest:
    """What a client asked for, validated: which model, what to do, and how to answer."""

    model: str
    task: Task = "transcribe"
    language: str | None = None  # None: detect
    prompt: str | None = None
    hotwords: tuple[str, ...] = ()  # names and terms to bias towards, most important first
    temperature: tuple[float, ...] = FALLBACK_TEMPERATURES
    granularities: frozenset[str] = frozenset()
    response_format: str = "json"

    @property
    def word_timestamps(self) -> bool:
        return "word" in self.granularities


# What a client's JSON may cost before it is parsed. Below CHEAP_JSON_BYTES nothing can be
# expensive (at most ~30,000 values, a few MB, a millisecond or two). Above it, the containers and
# separators are counted first, a slice at a time (``str.count`` runs at C speed, ~10 ms each for
# 20 MB; between slices the event loop gets the GIL back, and a bomb is refused in its first
# slice): a legitimate large message is a long string (a Realtime append's base64, 20 MB, holds
# 3) or a list of names, while seven million empty lists in 21 MB would take 4 s and 500 MB.
CHEAP_JSON_BYTES = 64 * 1024
MAX_JSON_VALUES = 100_000  # ~6 MB and ~5 ms of parsing at most
_COUNT_SLICE = 1 << 20


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` for what a client sent, refused before parsing when it would be costly.

    JSON with more than MAX_JSON_VALUES containers and separators, or nested deeper than the
    parser's recursion limit (a 64 KB Wyoming header of ``[`` is 65,536 levels), is malformed
    input like any other: a ``ValueError``, never a frozen event loop or the ``RecursionError``
    that would reach the door as a server fault.
    """
    if len(text) > CHEAP_JSON_BYTES:
        values = 0
        for start in range(0, len(text), _COUNT_SLICE):
            values += _values(text[start : start + _COUNT_SLICE])
            if values > MAX_JSON_VALUES:
                raise ValueError(f"JSON with more than {MAX_JSON_VALUES} values")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _values(text: str | bytes) -> int:
    """Containers and separators: a bound on the values that parsing ``text`` would build."""
    if isinstance(text, str):
        return text.count("[") + text.count("{") + text.count(",")
    return text.count(b"[") + text.count(b"{") + text.count(b",")


def parse_temperature(raw: str | float | None) -> tuple[float, ...]:
    """0 (or none) means Whisper's fallback schedule; any other value in [0, 1] is used alone."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return FALLBACK_TEMPERATURES
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # also false for NaN
        raise InvalidRequest(
            f"temperature must be a number between 0 and 1, got {raw!r}",
            param="temperature",
            code="invalid_value",
        )
    return FALLBACK_TEMPERATURES if value == 0.0 else (value,)


def parse_bool(raw: str | None, param: str) -> bool:
    text = (raw or "").strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise InvalidRequest(
        f"{param} must be true or false, got {raw!r}", param=param, code="invalid_value"
    )


def parse_granularities(values: Iterable[str]) -> frozenset[str]:
    """``word`` and ``segment``, each value repeated or comma-separated."""
    given = frozenset(v.strip() for raw in values for v in raw.split(",") if v.strip())
    unknown = given - GRANULARITIES
    if unknown:
        raise InvalidRequest(
            f"timestamp_granularities may hold 'word' and 'segment', got {sorted(unknown)}",
            param="timestamp_granularities",
            code="invalid_value",
        )
    return given


def require_model(raw: str | None) -> str:
    """OpenAI's API requires the model field; the streaming doors default it instead."""
    if raw is None or not raw.strip():
        raise InvalidRequest(
            "you must provide a model parameter (e.g. 'whisper-1')",
            param="model",
            code="missing_required_parameter",
        )
    return raw.strip()


class Served(Protocol):
    """What a request is checked against: the models served (the engine)."""

    def model_name(self, requested: str | None) -> str: ...


def build_request(
    served: Served,
    *,
    model: str | None,
    task: Task = "transcribe",
    language: str | None = None,
    prompt: str | None = None,
    hotwords: Iterable[str] = (),
    temperature: str | float | None = None,
    granularities: Iterable[str] = (),
    response_format: str | None = None,
) -> TranscriptionRequest:
    """Validate what a front door received, in one order, with one error per fault."""
    for param, value in (("model", model), ("language", language), ("prompt", prompt)):
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(f"{param} must be a string", param=param, code="invalid_value")
    name = served.model_name(model.strip() if model else None)
    shape = (response_format or "json").strip()
    if shape not in RESPONSE_FORMATS:
        raise InvalidRequest(
            f"response_format {shape!r} is not supported; use one of {', '.join(RESPONSE_FORMATS)}",
            param="response_format",
            code="invalid_value",
        )
    wanted = parse_granularities(granularities)
    code = normalize_language(language)
    check_language(name, code, task)
    text = prompt.strip() if prompt else ""
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidRequest(
            f"prompt is longer than {MAX_PROMPT_CHARS} characters",
            param="prompt",
            code="invalid_value",
        )
    phrases = [str(p).strip() for p in hotwords if str(p).strip()]
    return TranscriptionRequest(
        model=name,
        task=task,
        language=code,
        prompt=text or None,
        hotwords=tuple(dict.fromkeys(phrases)),
        temperature=parse_temperature(temperature),
        granularities=wanted,
        response_format=shape,
    )


def decode_options(
    request: TranscriptionRequest, defaults: TranscribeOptions, **overrides: Any
) -> TranscribeOptions:
    """The decoding options of a validated request over the server's ``defaults`` (the
    engine's ``options()``); ``overrides`` are the door's own, None leaves a field as it is."""
    asked = {
        "language": request.language,
        "task": request.task,
        "initial_prompt": request.prompt,
        "hotwords": request.hotwords or None,
        "temperature": request.temperature,
        "word_timestamps": request.word_timestamps,
    }
    values = {k: v for k, v in {**asked, **overrides}.items() if v is not None}
    return replace(defaults, **values)
