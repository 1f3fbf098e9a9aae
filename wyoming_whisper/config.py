"""Every command-line flag and WHISPER_* variable, turned once into one frozen Config.

Precedence for each setting: the command line, then ``WHISPER_EXTRA_ARGS`` (read as if typed on
the command line, before it), then the flag's own ``WHISPER_<FLAG>`` variable, then the default.
No other module reads the environment for settings: the Config is built here and handed down.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config_flags import DEFAULT_MODEL, build_parser
from .errors import InvalidRequest
from .languages import check_language, normalize_language
from .request import FALSE, TRUE


@dataclass(frozen=True)
class Config:
    """The server's settings, validated; see ``config_flags.build_parser`` for what each one
    means."""

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
    cpu_threads: int | None = None  # None: default_threads(max_concurrency, encoder_window)
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
        return self.cpu_threads or default_threads(self.max_concurrency, window=self.encoder_window)

    @property
    def stream_seconds(self) -> float:
        """Audio one Wyoming utterance or WebSocket stream may buffer (float32: 64 kB/s)."""
        return min(self.max_stream_seconds, self.max_audio_seconds)


def default_concurrency() -> int:
    """Parallel inference workers: one per two cores, at least one (CTranslate2 threads inside)."""
    return max(1, (os.cpu_count() or 2) // 2)


def default_threads(workers: int, cores: int | None = None, window: str = "auto") -> int:
    """CTranslate2 threads per worker: one per two cores a worker has (one per core when every
    window is 30 s, ``--encoder-window full``), 1 to 4.

    At batch one a decoder step is a chain of small products, and a second OpenMP thread costs
    more in synchronisation than it saves: tiny.en on 2 vCPUs decodes a command in 0.26 s with
    one thread and 0.38-0.46 s with two (CTranslate2's default, docs/reliability.md). The cores
    left over run the server's own threads (event loop, VAD, audio conversion) without taking
    them from a decode. A 30 s encoder pass is one large product that a second thread nearly
    halves (tiny.en, AMD EPYC: 0.455 -> 0.250 s), so with every window at 30 s the encoder
    outweighs what the decoder loses: a command 0.559 -> 0.477 s (docs/reliability.md).
    """
    cores = cores or os.cpu_count() or 2
    per_thread = 1 if window == "full" else 2
    return max(1, min(4, cores // (per_thread * max(1, workers))))


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
