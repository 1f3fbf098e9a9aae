"""A Realtime transcription session's settings, parsed from the client's session update.

Two shapes say the same thing: the GA ``session.update`` (``session.audio.input.*``) and the
older beta ``transcription_session.update`` (``input_audio_*`` at the top). Both are parsed here
into one ``Settings``, with no socket and no engine, so every fault of shape is found (and
tested) without a server. Each fault is an ``EventError`` naming the field as the client wrote
it (``param``), in the order the fields are read. The transcription's model, language and prompt
are request fields: they are left to ``request.build_request``, the one check of every door.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ...errors import InvalidRequest

# Audio formats: the GA names, the beta names, and how each is decoded.
FORMATS = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
BETA_FORMATS = {beta: ga for ga, beta in FORMATS.items()}
PCM_RATE = 24000  # the only rate the API sends audio/pcm at


class EventError(InvalidRequest):
    """A client event that does not fit the API (an ``invalid_request_error``)."""

    code = "invalid_value"


@dataclass(frozen=True)
class TurnDetection:
    """``server_vad`` (or ``semantic_vad``, run as server VAD with its eagerness as the pause)."""

    type: str = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    eagerness: str | None = None

    def as_json(self) -> dict[str, Any]:
        if self.type == "semantic_vad":
            return {"type": self.type, "eagerness": self.eagerness or "auto"}
        return {
            "type": self.type,
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
        }


@dataclass(frozen=True)
class Settings:
    """A transcription session's configuration, as ``session.updated`` shows it."""

    format: str = "audio/pcm"
    # The transcription's fields as the client sent them: request.build_request checks them, as
    # on every door, before a session keeps these settings (session.session_request).
    model: Any = None  # the name the client asked for ("whisper-1" when none)
    language: Any = None
    prompt: Any = ""
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    noise_reduction: dict[str, Any] | None = None  # accepted and shown; not applied
    include: tuple[str, ...] = ()

    def as_json(self, session_id: str, *, beta: bool) -> dict[str, Any]:
        transcription = {
            "model": self.model or "whisper-1",
            "language": self.language,
            "prompt": self.prompt,
        }
        detection = self.turn_detection.as_json() if self.turn_detection else None
        if beta:
            return {
                "id": session_id,
                "object": "realtime.transcription_session",
                "input_audio_format": FORMATS[self.format],
                "input_audio_transcription": transcription,
                "turn_detection": detection,
                "input_audio_noise_reduction": self.noise_reduction,
                "include": list(self.include),
            }
        audio_format: dict[str, Any] = {"type": self.format}
        if self.format == "audio/pcm":
            audio_format["rate"] = PCM_RATE
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": session_id,
            "audio": {
                "input": {
                    "format": audio_format,
                    "transcription": transcription,
                    "turn_detection": detection,
                    "noise_reduction": self.noise_reduction,
                }
            },
            "include": list(self.include),
        }


@dataclass(frozen=True)
class Shape:
    """Where one shape of session update keeps the input audio's fields."""

    transcription: str
    noise_reduction: str


GA = Shape("transcription", "noise_reduction")
BETA = Shape("input_audio_transcription", "input_audio_noise_reduction")


def parse_update(settings: Settings, event: dict[str, Any]) -> tuple[Settings, bool]:
    """``settings`` with a session update event applied, and whether it came in the beta shape
    (``transcription_session.update``, or beta fields sent with the GA event name)."""
    beta = event.get("type") == "transcription_session.update"
    session = _object(event.get("session"), "session")
    if not beta and "type" not in session and "input_audio_format" in session:
        beta = True
    return parse_session(settings, session, beta=beta, prefix="session"), beta


def parse_session(
    settings: Settings, session: dict[str, Any], *, beta: bool, prefix: str
) -> Settings:
    """``settings`` with a ``session.update`` (GA) or ``transcription_session.update`` (beta)
    applied; fields left out keep their value. ``prefix`` is where ``session`` sits in the
    event, for each fault's ``param``."""
    if beta:
        base, holder, shape = prefix, session, BETA
        changes = _beta_format(session.get("input_audio_format"), base)
    else:
        base, holder, shape = f"{prefix}.audio.input", _ga_input(session, prefix), GA
        changes = _ga_format(holder.get("format"), base)
    changes.update(_input_fields(holder, base, shape))
    include = session.get("include")
    if include is not None:
        if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
            raise EventError(f"'{prefix}.include' must be a list of strings", param="include")
        changes["include"] = tuple(include)
    return replace(settings, **changes)


def _ga_input(session: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A GA session's ``audio.input``, once its ``type`` says it is a transcription session."""
    kind = session.get("type", "transcription")
    if kind != "transcription":
        raise EventError(
            f"this server transcribes only: '{prefix}.type' must be 'transcription', "
            f"got {kind!r} (connect with ?intent=transcription)",
            param=f"{prefix}.type",
        )
    audio = _section(session.get("audio"), f"{prefix}.audio")
    return _section(audio.get("input"), f"{prefix}.audio.input")


def _beta_format(fmt: Any, base: str) -> dict[str, Any]:
    if fmt is None:
        return {}
    if not isinstance(fmt, str) or fmt not in BETA_FORMATS:  # (a list is no dict key)
        raise EventError(
            f"'{base}.input_audio_format' must be pcm16, g711_ulaw or g711_alaw, got {fmt!r}",
            param=f"{base}.input_audio_format",
        )
    return {"format": BETA_FORMATS[fmt]}


def _ga_format(value: Any, base: str) -> dict[str, Any]:
    if value is None:
        return {}
    raw = _object(value, f"{base}.format")
    fmt = raw.get("type", "audio/pcm")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise EventError(
            f"'{base}.format.type' must be audio/pcm, audio/pcmu or audio/pcma, got {fmt!r}",
            param=f"{base}.format.type",
        )
    if fmt == "audio/pcm" and raw.get("rate", PCM_RATE) != PCM_RATE:
        raise EventError(
            f"'{base}.format.rate' must be {PCM_RATE} for audio/pcm", param=f"{base}.format.rate"
        )
    return {"format": fmt}


def _input_fields(holder: dict[str, Any], base: str, shape: Shape) -> dict[str, Any]:
    """The transcription, turn detection and noise reduction, where ``shape`` keeps them."""
    changes: dict[str, Any] = {}
    transcription = holder.get(shape.transcription)
    if transcription is not None:
        raw = _object(transcription, f"{base}.{shape.transcription}")
        changes.update({name: raw[name] for name in ("model", "language", "prompt") if name in raw})
        if "prompt" in changes and changes["prompt"] is None:
            changes["prompt"] = ""  # null is no prompt
    if "turn_detection" in holder:
        changes["turn_detection"] = parse_turn_detection(
            holder["turn_detection"], f"{base}.turn_detection"
        )
    if shape.noise_reduction in holder:
        noise = holder[shape.noise_reduction]
        changes["noise_reduction"] = (
            None if noise is None else _object(noise, f"{base}.{shape.noise_reduction}")
        )
    return changes


def parse_turn_detection(value: Any, param: str) -> TurnDetection | None:
    """``None`` turns server VAD off (the client commits); fields left out take their default."""
    if value is None:
        return None
    raw = _object(value, param)
    kind = raw.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise EventError(
            f"'{param}.type' must be 'server_vad' or 'semantic_vad', got {kind!r}",
            param=f"{param}.type",
        )
    detection = TurnDetection(type=kind)
    if kind == "semantic_vad":
        eagerness = raw.get("eagerness", "auto")
        if eagerness not in ("low", "medium", "high", "auto"):
            raise EventError(
                f"'{param}.eagerness' must be low, medium, high or auto", param=f"{param}.eagerness"
            )
        return replace(detection, eagerness=eagerness)
    values: dict[str, Any] = {}
    for name, low, high in (
        ("threshold", 0.0, 1.0),
        ("prefix_padding_ms", 0, 10_000),
        ("silence_duration_ms", 0, 10_000),
    ):
        if raw.get(name) is not None:
            number = _number(raw[name], f"{param}.{name}", low, high)
            values[name] = number if name == "threshold" else int(number)
    return replace(detection, **values)


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EventError(f"'{param}' must be an object", param=param)
    return value


def _section(value: Any, param: str) -> dict[str, Any]:
    """A part of the session that may be left out (None: nothing changes); anything but an object
    is a fault, an empty list or string included."""
    return {} if value is None else _object(value, param)


def _number(value: Any, param: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise EventError(f"'{param}' must be a number from {low:g} to {high:g}", param=param)
    return float(value)
