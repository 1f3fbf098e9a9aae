"""Every command-line flag and WHISPER_* variable, turned once into one frozen Config.

Precedence for each setting: the command line, then ``WHISPER_EXTRA_ARGS`` (read as if typed on
the command line, before it), then the flag's own ``WHISPER_<FLAG>`` variable, then the default.
No other module reads the environment for settings: the Config is built here and handed down.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .errors import InvalidRequest
from .languages import normalize_language
from .request import FALSE, TRUE, check_language

DEFAULT_MODEL = "large-v3"
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps|metal)$")
COMPUTE_TYPES = (
    "auto",
    "default",
    "float16",
    "bfloat16",
    "float32",
    "int8",
    "int8_float16",
    "int8_bfloat16",
    "int8_float32",
    "int16",
)
BACKENDS = ("auto", "faster-whisper", "mlx")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
ENCODER_WINDOWS = ("auto", "full")


@dataclass(frozen=True)
class Config:
    """The server's settings, validated; see ``build_parser`` for what each one means."""

    models: tuple[str, ...] = (DEFAULT_MODEL,)
    default_model: str = DEFAULT_MODEL
    device: str = "auto"
    compute_type: str = "auto"
    cache_dir: Path | None = None
    ttl: float = 300.0
    preload: bool = False
    host: str = "0.0.0.0"
    port: int = 10301
    wyoming_port: int = 10300
    no_wyoming: bool = False
    download_only: bool = False
    backend: str = "auto"
    log_level: str = "info"
    no_zeroconf: bool = False
    zeroconf_name: str | None = None
    language: str | None = None
    beam_size: int = 5
    no_vad_filter: bool = False
    encoder_window: str = "auto"
    api_key: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    max_upload_mb: float = 200.0
    max_queue: int = 8
    max_concurrency: int = field(default_factory=lambda: default_concurrency())
    cpu_threads: int | None = None  # None: default_threads(max_concurrency)
    max_audio_seconds: float = 3600.0
    max_stream_seconds: float = 300.0
    wyoming_idle_timeout: float = 30.0
    no_early_decoding: bool = False
    early_decoding_pause: float = 0.3
    no_live_text: bool = False  # no confirmed words while speech arrives (agreement.py)
    vad_endpointing: bool = False
    drain_seconds: float = 10.0  # a stop waits at most this long for in-flight requests
    shutdown_delay: float = 0.0  # after a stop signal: not ready, still serving, this long
    # Connections (server.py): each port's cap, and how long an HTTP client may take to send its
    # headers (from connecting or from its last answer) and each piece of a body.
    max_connections: int = 100
    http_read_timeout: float = 30.0
    hass_url: str | None = None  # Home Assistant to read Assist's names from (hass_names.py)
    hass_token: str | None = field(default=None, repr=False)
    no_hass_names: bool = False
    hass_names_for_http: bool = False
    no_assist_commands: bool = False  # keep transcripts as heard (commands/)
    log_transcripts: bool = False  # Wyoming transcripts' words at INFO (else DEBUG)
    # Home Assistant Supervisor (set by it in an add-on's environment, never on the command line)
    supervisor_token: str | None = field(default=None, repr=False)
    supervisor_url: str = "http://supervisor"

    @property
    def vad_filter(self) -> bool:
        """Whether Wyoming requests drop non-speech before decoding (stops invented words)."""
        return not self.no_vad_filter

    @property
    def threads(self) -> int:
        """CTranslate2 threads inside each inference worker on the CPU."""
        return self.cpu_threads or default_threads(self.max_concurrency)

    @property
    def stream_seconds(self) -> float:
        """Audio one Wyoming utterance or WebSocket stream may buffer (float32: 64 kB/s)."""
        return min(self.max_stream_seconds, self.max_audio_seconds)


def default_concurrency() -> int:
    """Parallel inference workers: one per two cores, at least one (CTranslate2 threads inside)."""
    return max(1, (os.cpu_count() or 2) // 2)


def default_threads(workers: int, cores: int | None = None) -> int:
    """CTranslate2 threads per worker: one per two cores a worker has, 1 to 4.

    At batch one a decoder step is a chain of small products, and a second OpenMP thread costs
    more in synchronisation than it saves: tiny.en on 2 vCPUs decodes a command in 0.26 s with
    one thread and 0.38-0.46 s with two (CTranslate2's default, docs/reliability.md). The cores
    left over run the server's own threads (event loop, VAD, audio conversion) without taking
    them from a decode.
    """
    cores = cores or os.cpu_count() or 2
    return max(1, min(4, cores // (2 * max(1, workers))))


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad value as one line, exit status 2, and no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _port(text: str) -> int:
    value = _int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {text}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _positive(text: str) -> float:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _device(text: str) -> str:
    value = text.strip().lower()
    if not DEVICE_RE.match(value):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use auto, cpu, cuda or cuda:N")
    return value


def _choice(choices: Sequence[str], what: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {text!r}; choose from {', '.join(choices)}"
            )
        return value

    return convert


def build_parser() -> argparse.ArgumentParser:
    """The command line; every option here also reads WHISPER_<OPTION> from the environment."""
    p = _Parser(
        prog="wyoming-whisper",
        description="Local Whisper speech-to-text: Wyoming (Home Assistant) and OpenAI HTTP API.",
    )
    add = p.add_argument
    add(
        "--model",
        "-m",
        action="append",
        default=None,
        metavar="NAME",
        help="Whisper model to serve: a name (tiny, tiny.en, base, small, medium, large-v3, "
        "distil-large-v3, ...) or a CTranslate2 model directory. Repeat for several. "
        f"Default: {DEFAULT_MODEL}",
    )
    add(
        "--default-model",
        metavar="NAME",
        help="Model used when a client names none; must be one of --model (default: the first)",
    )
    add("--device", "-d", type=_device, help="auto, cpu, cuda or cuda:N (default: auto)")
    add(
        "--compute-type",
        type=_choice(COMPUTE_TYPES, "compute type"),
        help="auto (float16 on CUDA, int8 on CPU), float16, int8, int8_float16, float32, ...",
    )
    add(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="Where models are downloaded and assembled (default: the Hugging Face cache)",
    )
    add(
        "--ttl",
        type=_non_negative,
        metavar="SECONDS",
        help="Unload a model after this many idle seconds; 0 keeps it loaded (default: 300)",
    )
    add(
        "--preload",
        action="store_true",
        default=None,
        help="Load the models before opening the ports",
    )
    add("--host", help="Address to bind (default: 0.0.0.0)")
    add("--port", "-p", type=_port, help="HTTP port for the OpenAI API (default: 10301)")
    add("--wyoming-port", type=_port, help="Wyoming TCP port (default: 10300)")
    add("--no-wyoming", action="store_true", default=None, help="Run the HTTP API only")
    add(
        "--download-only",
        action="store_true",
        default=None,
        help="Fetch or assemble the models, then exit",
    )
    add(
        "--backend",
        "-b",
        type=_choice(BACKENDS, "backend"),
        help="auto (mlx on Apple silicon, else faster-whisper), faster-whisper or mlx",
    )
    add("--log-level", type=_choice(LOG_LEVELS, "log level"), help="Logging level (default: info)")
    add(
        "--no-zeroconf",
        action="store_true",
        default=None,
        help="Do not advertise the Wyoming service over mDNS",
    )
    add(
        "--zeroconf-name",
        metavar="NAME",
        help="Service name advertised over mDNS (default: derived from the MAC address)",
    )
    add(
        "--language",
        metavar="CODE",
        help="Language assumed when a client gives none (default: detect)",
    )
    add("--beam-size", type=_positive_int, help="Beam size for decoding (default: 5)")
    add(
        "--encoder-window",
        type=_choice(ENCODER_WINDOWS, "encoder window"),
        help="auto: encode audio shorter than 30 s at its own length, redoing a degenerate "
        "decode at 30 s (faster-whisper); full: always 30 s, as the library does "
        "(default: auto)",
    )
    add(
        "--no-vad-filter",
        action="store_true",
        default=None,
        help="Do not drop non-speech before decoding Wyoming audio",
    )
    add(
        "--api-key",
        metavar="KEY",
        help="Require 'Authorization: Bearer KEY' on /v1 routes (or WHISPER_API_KEY / _FILE)",
    )
    add(
        "--cors-origins",
        metavar="ORIGINS",
        help="Comma-separated origins allowed to call the HTTP API from a browser ('*' for any)",
    )
    add(
        "--max-upload-mb",
        type=_positive,
        metavar="MB",
        help="Largest accepted upload in MB; larger bodies get 413 (default: 200)",
    )
    add(
        "--max-queue",
        type=_positive_int,
        metavar="N",
        help="Requests waiting per model before new ones get 503/busy (default: 8)",
    )
    add(
        "--max-concurrency",
        type=_positive_int,
        metavar="N",
        help="Parallel inference workers (default: half the CPU cores, at least 1)",
    )
    add(
        "--cpu-threads",
        type=_positive_int,
        metavar="N",
        help="CTranslate2 threads inside each worker on the CPU (default: one per two cores a "
        "worker has, 1 to 4)",
    )
    add(
        "--max-audio-seconds",
        type=_positive,
        metavar="SECONDS",
        help="Longest accepted audio, decoded (default: 3600)",
    )
    add(
        "--max-stream-seconds",
        type=_positive,
        metavar="SECONDS",
        help="Longest audio one Wyoming utterance or WebSocket stream may buffer in memory "
        "(default: 300)",
    )
    add(
        "--wyoming-idle-timeout",
        type=_positive,
        metavar="SECONDS",
        help="Drop a Wyoming utterance or WebSocket stream when no audio arrives for this long "
        "(default: 30)",
    )
    add(
        "--hass-url",
        metavar="URL",
        help="Home Assistant (http://host:8123) whose exposed entity, area and floor names bias "
        "Wyoming requests that name none (an add-on needs no setting)",
    )
    add(
        "--hass-token",
        metavar="TOKEN",
        help="Long-lived access token for --hass-url (or WHISPER_HASS_TOKEN / _FILE)",
    )
    add(
        "--no-hass-names",
        action="store_true",
        default=None,
        help="Do not read names from Home Assistant",
    )
    add(
        "--hass-names-for-http",
        action="store_true",
        default=None,
        help="Also bias HTTP transcriptions that send no prompt with Home Assistant's names",
    )
    add(
        "--no-assist-commands",
        action="store_true",
        default=None,
        help="Send transcripts as heard: do not answer a near-miss of a Home Assistant command "
        "(for requests with names) with the command Home Assistant understands",
    )
    add(
        "--no-early-decoding",
        action="store_true",
        default=None,
        help="Decode only after the end of the stream, never during pauses",
    )
    add(
        "--early-decoding-pause",
        type=_positive,
        metavar="SECONDS",
        help="Pause after speech that starts an early decode when the client ends the utterance "
        "(default: 0.3; 0.1 when the server does)",
    )
    add(
        "--no-live-text",
        action="store_true",
        default=None,
        help="Send no confirmed words while the speaker talks (Wyoming chunks, WebSocket and "
        "Realtime deltas): text only when the utterance ends",
    )
    add(
        "--vad-endpointing",
        action="store_true",
        default=None,
        help="End Wyoming utterances on the server's own voice activity detection",
    )
    add(
        "--drain-seconds",
        type=_non_negative,
        metavar="SECONDS",
        help="On SIGTERM, wait at most this long for in-flight requests to finish (default: 10)",
    )
    add(
        "--shutdown-delay",
        type=_non_negative,
        metavar="SECONDS",
        help="On SIGTERM, answer /ready with 503 but keep accepting requests this long before "
        "closing the ports, so a load balancer stops sending first (default: 0)",
    )
    add(
        "--log-transcripts",
        action="store_true",
        default=None,
        help="Log what each Wyoming transcript says at INFO (default: only at --log-level debug; "
        "the words are what people say in their homes)",
    )
    add(
        "--max-connections",
        type=_positive_int,
        metavar="N",
        help="Open connections each port accepts (HTTP and Wyoming, counted apart); one more "
        "gets 503 or a Wyoming error event and is closed (default: 100)",
    )
    add(
        "--http-read-timeout",
        type=_positive,
        metavar="SECONDS",
        help="Close an HTTP connection whose request headers take longer than this (also an "
        "idle keep-alive connection); answer 408 when a request body stalls this long "
        "(default: 30)",
    )
    add("--version", action="version", version=f"%(prog)s {__version__}")
    return p


_LIST_FLAGS = {"model": "models", "cors_origins": "cors_origins"}


def _env_name(dest: str) -> str:
    return "WHISPER_" + dest.upper()


def load_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Parse arguments and environment into a Config; a bad value exits 2 with one line."""
    env = os.environ if environ is None else environ
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    extra = shlex.split(env.get("WHISPER_EXTRA_ARGS", ""))
    args = parser.parse_args([*extra, *argv])

    values: dict[str, Any] = {}
    for action in parser._actions:
        dest = action.dest
        if dest in ("help", "version"):
            continue
        value = getattr(args, dest)
        if value is None and _env_name(dest) in env:
            value = _from_env(parser, action, env[_env_name(dest)])
        if value is None:
            continue
        if dest == "model":
            value = tuple(m.strip() for item in value for m in item.split(",") if m.strip())
        elif dest == "cors_origins":
            value = tuple(o.strip() for o in value.split(",") if o.strip())
        values[_LIST_FLAGS.get(dest, dest)] = value

    models = tuple(dict.fromkeys(values.get("models") or (DEFAULT_MODEL,)))
    values["models"] = models
    default_model = values.get("default_model") or models[0]
    if default_model not in models:
        parser.error(
            f"--default-model {default_model!r} is not one of --model ({', '.join(models)})"
        )
    values["default_model"] = default_model
    values["language"] = _language(parser, values.get("language"), models)
    # The Supervisor hands an add-on its API token in the environment; a token is a secret, so it
    # has no flag (a command line is visible to every process). SUPERVISOR_URL is for tests.
    values["supervisor_token"] = env.get("SUPERVISOR_TOKEN") or None
    values["supervisor_url"] = (env.get("SUPERVISOR_URL") or "http://supervisor").rstrip("/")
    for dest in ("api_key", "hass_token"):  # a secret mounted as a file (Docker, k8s): not in ps
        _secret_file(parser, values, dest, env)
    if values.get("hass_url") and not values.get("hass_token"):
        parser.error("--hass-url needs a token: --hass-token, WHISPER_HASS_TOKEN or _FILE")
    return Config(**values)


def _language(
    parser: argparse.ArgumentParser, value: str | None, models: Sequence[str]
) -> str | None:
    """--language read as a request's language is ('auto' detects, 'en-US' is 'en'), and refused
    at start where no served model could speak it, rather than failing every request later."""
    try:
        code = normalize_language(value)
        errors = []
        for model in models:
            try:
                check_language(model, code)
                return code
            except InvalidRequest as err:
                errors.append(err)
        raise errors[0]
    except InvalidRequest as err:
        parser.error(f"--language: {err.message}")


def _secret_file(
    parser: argparse.ArgumentParser, values: dict[str, Any], dest: str, env: Mapping[str, str]
) -> None:
    """WHISPER_<FLAG>_FILE: the secret read from a file (stripped); the flag or variable wins."""
    name = _env_name(dest) + "_FILE"
    path = env.get(name)
    if values.get(dest) or not path:
        return
    try:
        values[dest] = Path(path).read_text().strip() or None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not text"
        parser.error(f"{name} {path!r}: {reason}")


def _from_env(parser: argparse.ArgumentParser, action: argparse.Action, raw: str) -> Any:
    """Convert WHISPER_<FLAG> with the flag's own type, so both report bad values alike."""
    name = _env_name(action.dest)
    if isinstance(action, argparse._StoreTrueAction):
        text = raw.strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return None
        parser.error(f"{name}={raw!r} is not a boolean (use true or false)")
    if action.dest == "model":
        return [raw]
    if action.type is None:
        return raw or None
    try:
        return action.type(raw)  # type: ignore[operator]
    except argparse.ArgumentTypeError as err:
        parser.error(f"{name}: {err}")
