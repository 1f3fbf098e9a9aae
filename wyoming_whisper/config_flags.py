"""The command line as a table: every flag, its value type and help text, in one parser.

Each flag is also read as ``WHISPER_<FLAG>`` (and the add-on writes its options as these flags):
``config.load_config`` turns the parser's answers and the environment into one ``Config``. The
names, defaults and variables are published (docs, the add-on's options, the spec): a rename
breaks someone's setup. The value types here report a bad value the same way for a flag and for
its variable.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from . import __version__

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
        "worker has, one per core with --encoder-window full, 1 to 4)",
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
