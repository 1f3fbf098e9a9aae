"""Home Assistant add-on entry: ``/data/options.json`` -> command-line flags -> the server.

The Supervisor checks the options against config.yaml's schema before it writes options.json; this
module checks them again against ``SCHEMA`` (the same schema, in the Supervisor's notation; a test
compares the two) so that a hand-edited file or a schema drift is one clear line naming the option
and exit status 2, never a traceback. An option left empty is left out of the command line, never
passed on as the text "null".

``python -m wyoming_whisper.addon [--options FILE] [--cache-dir DIR]``
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import voluptuous as vol

from .backends.ctranslate2_models import (
    MODEL_FILES,
    PACKS,
    hub_models,
    is_model_dir,
    looks_like_path,
)
from .config_flags import COMPUTE_TYPES, ENCODER_WINDOWS, LOG_LEVELS, build_parser
from .languages import LANGUAGES, model_languages

OPTIONS_PATH = Path("/data/options.json")
PROG = "wyoming-whisper-addon"

# The add-on's options schema in the Supervisor's notation: identical to config.yaml's ``schema``.
SCHEMA: dict[str, Any] = {
    "model": ["str"],
    "language": "list(" + "|".join(["auto", *sorted(LANGUAGES)]) + ")?",
    "ttl": "int(0,)",
    "preload": "bool",
    "device": "list(auto|cpu|cuda)",
    "compute_type": "list(" + "|".join(COMPUTE_TYPES) + ")",
    "beam_size": "int(1,10)",
    "encoder_window": "list(" + "|".join(ENCODER_WINDOWS) + ")",
    "api_key": "password?",
    "log_level": "list(" + "|".join(LOG_LEVELS) + ")",
    "extra_args": "str?",
}

# config.yaml's ``options`` (the defaults shown in the UI), chosen for a Raspberry Pi 4; DOCS.md
# says why for each.
DEFAULTS: dict[str, Any] = {
    "model": ["tiny.en"],
    "language": "auto",
    "ttl": 0,
    "preload": True,
    "device": "auto",
    "compute_type": "int8",
    "beam_size": 1,
    "encoder_window": "auto",
    "api_key": "",
    "log_level": "info",
    "extra_args": "",
}

# The Supervisor's element grammar (supervisor/addons/options.py), for the types used here.
_ELEMENT = re.compile(
    r"^(?P<type>str|password|int|float|bool|list|match)"
    r"(?:\((?P<args>.*)\))?(?P<optional>\?)?$"
)


class AddonError(Exception):
    """A bad option: the message names it and says what is wanted."""


def _number(kind: type, args: str | None) -> Callable[[Any], Any]:
    low, _, high = (args or ",").partition(",")

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise vol.Invalid(f"expected a number, got {value!r}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise vol.Invalid(f"expected {kind.__name__}, got {value!r}") from None
        if low and number < kind(low):
            raise vol.Invalid(f"must be at least {low}, got {value!r}")
        if high and number > kind(high):
            raise vol.Invalid(f"must be at most {high}, got {value!r}")
        return number

    return check


def _choice(choices: list[str]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if str(value) not in choices:
            shown = ", ".join(choices) if len(choices) <= 12 else ", ".join(choices[:6]) + ", ..."
            raise vol.Invalid(f"{value!r} is not one of {shown}")
        return str(value)

    return check


def _string(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        raise vol.Invalid(f"expected text, got {json.dumps(value)}")
    return str(value)


def element(typ: str) -> tuple[Callable[[Any], Any], bool]:
    """One Supervisor schema element -> (validator, optional)."""
    match = _ELEMENT.match(typ)
    if match is None:
        raise ValueError(f"unsupported schema element {typ!r}")
    kind, args = match["type"], match["args"]
    validator: Callable[[Any], Any]
    if kind in ("str", "password"):
        validator = _string
    elif kind == "int":
        validator = _number(int, args)
    elif kind == "float":
        validator = _number(float, args)
    elif kind == "bool":
        validator = vol.Boolean()
    elif kind == "list":
        validator = _choice((args or "").split("|"))
    else:  # match
        validator = vol.All(_string, vol.Match(args or ""))
    return validator, bool(match["optional"])


def _or_none(validator: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An optional option may be missing, null or blank: all mean "left empty"."""

    def check(value: Any) -> Any:
        return None if _empty(value) else validator(value)

    return check


def voluptuous_schema(schema: dict[str, Any] = SCHEMA) -> vol.Schema:
    """The Supervisor's schema as a voluptuous Schema (lists are ``[element]``)."""
    fields: dict[Any, Any] = {}
    for key, typ in schema.items():
        if isinstance(typ, list):
            item, optional = element(typ[0])
            validator: Any = [_or_none(item)]  # a blank row in the UI's list is skipped
        else:
            item, optional = element(typ)
            validator = _or_none(item) if optional else item
        fields[vol.Optional(key) if optional else vol.Required(key)] = validator
    # Unknown keys are what an older version left behind; the Supervisor drops them too.
    return vol.Schema(fields, extra=vol.REMOVE_EXTRA)


def validate(options: Any) -> dict[str, Any]:
    if not isinstance(options, dict):
        raise AddonError(f"the options must be a JSON object, not {type(options).__name__}")
    try:
        return dict(voluptuous_schema()(options))
    except vol.MultipleInvalid as err:
        first = err.errors[0]
        key = str(first.path[0]) if first.path else "?"
        message = first.msg
        if isinstance(first, vol.RequiredFieldInvalid):
            message = "is missing"
        elif key == "api_key":  # never echo a secret into the log
            message = "must be text"
        elif message.startswith("expected list"):
            message = f"expected a list, got {options.get(key)!r}"
        raise AddonError(f"option '{key}': {message}") from None


def read_options(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise AddonError(f"cannot read the options file {path}: {err.strerror or err}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise AddonError(f"the options file {path} is not valid JSON: {err}") from None
    return validate(raw)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", "null"))


class _ExtraArgsError(Exception):
    pass


def _check_extra_args(extra: list[str]) -> None:
    """Parse the extra arguments alone, so a mistake there is reported as that option's."""
    if {"-h", "--help", "--version"} & set(extra):  # they print and exit: no way to start
        raise AddonError("option 'extra_args': --help and --version start no server")
    parser = build_parser()

    def error(message: str) -> NoReturn:
        raise _ExtraArgsError(message)

    parser.error = error  # type: ignore[method-assign]
    try:
        parser.parse_args(extra)
    except _ExtraArgsError as err:
        raise AddonError(f"option 'extra_args': {err}") from None
    except SystemExit:  # an abbreviation of --help or --version
        raise AddonError("option 'extra_args': --help and --version start no server") from None


def _check_model(name: str) -> None:
    """Catch a misspelt name or a wrong path now, not as a failed load after start-up."""
    if looks_like_path(name) or Path(name).is_dir():
        if not is_model_dir(Path(name)):
            raise AddonError(
                f"option 'model': {name} is not a CTranslate2 Whisper model directory "
                f"(it needs {' and '.join(MODEL_FILES)}; put custom models under /share/whisper)"
            )
    elif "/" not in name and name not in PACKS and name not in hub_models():
        known = ", ".join(sorted({*PACKS, *hub_models()}))
        raise AddonError(
            f"option 'model': {name!r} is unknown; use one of {known}, a Hugging Face id "
            "(org/name) or a model directory under /share/whisper"
        )


def to_argv(options: dict[str, Any], cache_dir: Path) -> list[str]:
    """Validated options -> the server's command line (empty options left out)."""
    models = [str(m).strip() for m in options.get("model") or [] if not _empty(m)]
    if not models:
        raise AddonError("option 'model': name at least one model, e.g. tiny.en")
    for name in models:
        _check_model(name)
    argv: list[str] = []
    for name in models:
        argv += ["--model", name]

    language = options.get("language")
    if not _empty(language) and language != "auto":
        served = {code for name in models for code in model_languages(name)}
        if language not in served:
            raise AddonError(
                f"option 'language': {language!r} needs a multilingual model, but "
                f"{', '.join(models)} only speak{'s' if len(models) == 1 else ''} English "
                "(choose tiny, base or small)"
            )
        argv += ["--language", str(language)]

    argv += ["--ttl", str(options["ttl"])]
    if options["preload"]:
        argv.append("--preload")
    argv += ["--device", options["device"], "--compute-type", options["compute_type"]]
    argv += ["--beam-size", str(options["beam_size"])]
    argv += ["--encoder-window", options["encoder_window"]]
    if not _empty(options.get("api_key")):
        argv += ["--api-key", str(options["api_key"])]
    argv += ["--log-level", options["log_level"]]
    # Home Assistant learns of the add-on from the Supervisor; mDNS from inside the add-on's
    # network would announce an address no other machine can reach.
    argv += ["--no-zeroconf", "--cache-dir", str(cache_dir)]

    extra_text = options.get("extra_args")
    if not _empty(extra_text):
        try:
            extra = shlex.split(str(extra_text))
        except ValueError as err:
            raise AddonError(f"option 'extra_args': {err}") from None
        _check_extra_args(extra)
        argv += extra  # last, so a flag given here wins over the mapped one
    return argv


SECRET_FLAGS = ("--api-key", "--hass-token")


def _secret_spellings() -> frozenset[str]:
    """Every spelling argparse takes for a secret flag: the flag and each unambiguous prefix."""
    options = [o for a in build_parser()._actions for o in a.option_strings if o.startswith("--")]
    spellings = set(SECRET_FLAGS)
    for flag in SECRET_FLAGS:
        for end in range(3, len(flag)):
            prefix = flag[:end]
            if [o for o in options if o.startswith(prefix)] == [flag]:
                spellings.add(prefix)
    return frozenset(spellings)


def redact(argv: Sequence[str]) -> list[str]:
    """The command line with every secret hidden, for the log, however the flag was spelt
    (``--api-key KEY``, ``--api-key=KEY``, ``--api=KEY``: argparse takes abbreviations)."""
    secret = _secret_spellings()
    shown = list(argv)
    for i, arg in enumerate(shown):
        name, eq, _ = arg.partition("=")
        if name not in secret:
            continue
        if eq:
            shown[i] = f"{name}=********"
        elif i + 1 < len(shown):
            shown[i + 1] = "********"
    return shown


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--options", type=Path, default=OPTIONS_PATH, help=f"default: {OPTIONS_PATH}"
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="where models are kept (default: models/ beside --options)"
    )
    args = parser.parse_args(argv)
    cache_dir = args.cache_dir or args.options.parent / "models"
    try:
        server_argv = to_argv(read_options(args.options), cache_dir)
    except AddonError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr, flush=True)
        return 2
    print(
        f"{PROG}: starting wyoming-whisper {shlex.join(redact(server_argv))}",
        file=sys.stderr,
        flush=True,
    )
    from .__main__ import main as server_main

    return server_main(server_argv)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
