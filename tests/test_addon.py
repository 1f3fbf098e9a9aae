"""The Home Assistant add-on: its files agree with each other, run.sh maps options.json onto a real
server, bad options end in one clear line, and discovery reaches a stand-in Supervisor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe

from wyoming_whisper import addon
from wyoming_whisper.discovery import SupervisorDiscovery

from .harness import (
    REPO,
    ServerProcess,
    eventually_async,
    free_port,
    never_async,
    repository_files,
)

pytestmark = pytest.mark.smoke  # also run on Python 3.12 and 3.13 (.ci/run)

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
TRANSLATIONS = yaml.safe_load((REPO / "translations" / "en.yaml").read_text())


def _strip(schema: Any) -> Any:
    """Block scalars in YAML end in a newline that the Supervisor's regex ignores."""
    if isinstance(schema, str):
        return schema.strip()
    if isinstance(schema, list):
        return [_strip(s) for s in schema]
    return {k: _strip(v) for k, v in schema.items()}


# --- the add-on's files agree --------------------------------------------------------------------


def test_options_schema_translations_and_addon_py_name_the_same_options() -> None:
    options, schema = CONFIG["options"], CONFIG["schema"]
    assert list(options) == list(schema)
    assert set(TRANSLATIONS["configuration"]) == set(schema)
    assert list(addon.SCHEMA) == list(schema)
    for key, text in TRANSLATIONS["configuration"].items():
        assert text["name"].strip() and len(text["description"].split()) >= 5, key


def test_addon_py_schema_is_config_yaml_schema() -> None:
    assert _strip(CONFIG["schema"]) == addon.SCHEMA


def test_config_yaml_defaults_validate_and_map() -> None:
    assert CONFIG["options"] == addon.DEFAULTS
    options = addon.validate(CONFIG["options"])
    argv = addon.to_argv(options, Path("/data/models"))
    assert argv[:2] == ["--model", "tiny.en"]
    assert "--no-zeroconf" in argv and argv[argv.index("--cache-dir") + 1] == "/data/models"
    assert "--api-key" not in argv and "--language" not in argv  # empty / auto: left out


def test_every_port_has_a_description_and_a_translation() -> None:
    ports = set(CONFIG["ports"])
    assert ports == {"10300/tcp", "10301/tcp"}
    assert set(CONFIG["ports_description"]) == ports
    assert set(TRANSLATIONS["network"]) == ports


def test_config_yaml_is_an_addon_the_store_accepts() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE)
    assert version and str(CONFIG["version"]) == version[1]
    for key in ("name", "slug", "description", "url"):
        assert CONFIG[key], key
    assert set(CONFIG["arch"]) == {"amd64", "aarch64"}
    assert CONFIG["discovery"] == ["wyoming"]
    assert any(str(m).startswith("share") for m in CONFIG["map"])
    assert CONFIG["backup_exclude"]
    build = yaml.safe_load((REPO / "build.yaml").read_text())
    assert set(build["build_from"]) == set(CONFIG["arch"])
    repository = yaml.safe_load((REPO / "repository.yaml").read_text())
    assert repository["name"] and repository["url"]
    for name in ("DOCS.md", "CHANGELOG.md", "icon.png", "logo.png", "run.sh", "Dockerfile"):
        assert (REPO / name).is_file(), name
    assert os.access(REPO / "run.sh", os.X_OK)
    assert f"## {version[1]}" in (REPO / "CHANGELOG.md").read_text()
    docs = (REPO / "DOCS.md").read_text()
    for key in CONFIG["schema"]:
        assert f"`{key}`" in docs, f"DOCS.md does not explain option {key}"


def test_the_store_finds_exactly_one_addon() -> None:
    """The Supervisor takes every config.{json,yaml,yml} outside dot-folders and rootfs as one."""
    found = [
        f
        for f in repository_files()
        if Path(f).name in ("config.json", "config.yaml", "config.yml")
        and not any(part.startswith(".") or part == "rootfs" for part in Path(f).parts)
    ]
    assert found == ["config.yaml"]


def test_images_are_the_right_size() -> None:
    def png_size(path: Path) -> tuple[int, int]:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")

    assert png_size(REPO / "icon.png") == (128, 128)
    width, height = png_size(REPO / "logo.png")
    assert 200 <= width <= 300 and 80 <= height <= 130
    for name in ("icon.png", "logo.png"):
        assert (REPO / name).stat().st_size < 40_000, name


# --- options -> flags (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize("empty", [None, "", "  ", "null"])
def test_an_empty_option_is_left_out_never_passed_as_null(empty: Any) -> None:
    options = {**addon.DEFAULTS, "language": empty, "api_key": empty, "extra_args": empty}
    argv = addon.to_argv(addon.validate(options), Path("/data/models"))
    assert "null" not in argv and "None" not in argv
    assert "--api-key" not in argv and "--language" not in argv


def test_missing_optional_options_are_fine_and_blank_models_skipped() -> None:
    options = {k: v for k, v in addon.DEFAULTS.items() if k not in ("api_key", "extra_args")}
    options["model"] = ["", "tiny.en", None, "base"]
    argv = addon.to_argv(addon.validate(options), Path("/m"))
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--model"] == ["tiny.en", "base"]


def test_api_key_is_passed_but_redacted_for_the_log() -> None:
    argv = addon.to_argv(addon.validate({**addon.DEFAULTS, "api_key": "s3cret"}), Path("/m"))
    assert argv[argv.index("--api-key") + 1] == "s3cret"
    assert "s3cret" not in " ".join(addon.redact(argv))
    assert "s3cret" not in " ".join(addon.redact(["--api-key=s3cret"]))


@pytest.mark.parametrize(
    "argv",
    [
        ["--api=s3cret"],
        ["--api", "s3cret"],
        ["--api-k", "s3cret", "--beam-size", "5"],
        ["--hass-token", "s3cret"],
        ["--hass-to=s3cret"],
        ["--model", "tiny.en", "--hass-t", "s3cret"],
    ],
)
def test_every_spelling_of_a_secret_flag_is_redacted(argv: list[str]) -> None:
    """argparse takes any unambiguous prefix of a flag, with '=' or the value after it."""
    shown = addon.redact(argv)
    assert "s3cret" not in " ".join(shown) and len(shown) == len(argv), shown
    assert addon.redact(["--host", "h", "--api-key"]) == ["--host", "h", "--api-key"]


def test_extra_args_come_last_and_win() -> None:
    options = {**addon.DEFAULTS, "extra_args": "--beam-size 5 --cors-origins '*'"}
    argv = addon.to_argv(addon.validate(options), Path("/m"))
    assert argv[-4:] == ["--beam-size", "5", "--cors-origins", "*"]


# --- run.sh: a real add-on process ---------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHISPER_", "SUPERVISOR_"))}
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**env, "PYTHON": sys.executable, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"}


class AddonProcess(ServerProcess):
    """run.sh with an options file; the WHISPER_* variables put it on loopback (tests only)."""

    def __init__(self, options: dict[str, Any], data_dir: Path, env: dict[str, str]) -> None:
        super().__init__([], env=env)
        self.data_dir = data_dir
        (data_dir / "options.json").write_text(json.dumps(options))

    def start(self, log_dir: Path, wait: bool = True, timeout: float = 120.0) -> AddonProcess:
        self.log_path = log_dir / f"addon-{self.port}.log"
        env = {
            **_env(),
            **self.env,
            "WHISPER_HOST": "127.0.0.1",
            "WHISPER_PORT": str(self.port),
            "WHISPER_WYOMING_PORT": str(self.wyoming_port),
        }
        cmd = [str(REPO / "run.sh"), "--options", str(self.data_dir / "options.json")]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
        if wait:
            self.wait_ready(timeout)
        return self


class StandInSupervisor:
    """An aiohttp server on loopback that records discovery POSTs, as the Supervisor's API."""

    def __init__(self, port: int, wyoming_port: int) -> None:
        self.port = port
        self.wyoming_port = wyoming_port
        self.requests: list[dict[str, Any]] = []
        self.received = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def _discovery(self, request: web.Request) -> web.Response:
        try:  # was the Wyoming port already open when discovery was sent?
            _, writer = await asyncio.open_connection("127.0.0.1", self.wyoming_port)
            writer.close()
            wyoming_open = True
        except OSError:
            wyoming_open = False
        self.requests.append(
            {
                "auth": request.headers.get("Authorization"),
                "body": await request.json(),
                "wyoming_open": wyoming_open,
            }
        )
        self.received.set()
        return web.json_response({"result": "ok", "data": {"uuid": "0" * 32}})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/discovery", self._discovery)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def addon_processes(log_dir: Path) -> AsyncIterator[list[AddonProcess]]:
    started: list[AddonProcess] = []
    yield started
    for proc in started:
        proc.stop()


async def _wait_ready(proc: AddonProcess, timeout: float = 120.0) -> dict[str, Any]:
    return await asyncio.to_thread(proc.wait_ready, timeout)


async def test_run_sh_starts_a_server_with_the_mapped_settings(
    tmp_path: Path, log_dir: Path, addon_processes: list[AddonProcess]
) -> None:
    supervisor = StandInSupervisor(free_port(), 0)
    await supervisor.start()
    try:
        options = {
            **addon.DEFAULTS,
            "model": ["tiny.en"],
            "language": None,
            "ttl": 120,
            "device": "cpu",
            "beam_size": 2,
            "api_key": "s3cret-key",
            "extra_args": None,
        }
        env = {"SUPERVISOR_URL": f"http://127.0.0.1:{supervisor.port}"}  # but no token
        proc = AddonProcess(options, tmp_path, env).start(log_dir, wait=False)
        addon_processes.append(proc)
        health = await _wait_ready(proc)
        assert health["default_model"] == "tiny.en"
        assert health["device"] == "cpu" and health["compute_type"] == "int8"
        assert [(m["name"], m["state"], m["ttl"]) for m in health["models"]] == [
            ("tiny.en", "loaded", 120.0)
        ]
        async with AsyncTcpClient("127.0.0.1", proc.wyoming_port) as client:
            await client.write_event(Describe().event())
            info = await asyncio.wait_for(client.read_event(), 10)
        assert info is not None and info.type == "info"
        # The images' HEALTHCHECK command, against this server and against a closed port.
        for port, healthy in ((proc.port, True), (free_port(), False)):
            check = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "wyoming_whisper.healthcheck"],
                env={**_env(), "WHISPER_PORT": str(port)},
                cwd=REPO,
                capture_output=True,
                timeout=30,
            )
            assert (check.returncode == 0) is healthy, check.stderr

        log = proc.log()
        started = next(line for line in log.splitlines() if "starting wyoming-whisper" in line)
        assert "--beam-size 2" in started and "--ttl 120" in started
        assert "--cache-dir " + str(tmp_path / "models") in started
        assert "--api-key '********'" in started or "--api-key ********" in started
        assert "s3cret-key" not in log and "null" not in started
        # Without a token no discovery task exists, and nothing the server says afterwards
        # would follow a POST it never makes: a bounded wait (discovery's first POST goes out
        # at once with a token, well inside it) is the only evidence of the absence.
        await never_async(lambda: supervisor.requests, 1.5, what="discovery without a token")
        assert "discovery" not in proc.log().lower()
    finally:
        await supervisor.stop()


async def test_discovery_reaches_the_supervisor_once_it_is_up(
    tmp_path: Path, log_dir: Path, addon_processes: list[AddonProcess]
) -> None:
    proc = AddonProcess(addon.DEFAULTS, tmp_path, {})
    supervisor = StandInSupervisor(free_port(), proc.wyoming_port)
    proc.env = {
        "SUPERVISOR_TOKEN": "test-token-123",
        "SUPERVISOR_URL": f"http://127.0.0.1:{supervisor.port}",
    }
    proc.start(log_dir, wait=False)
    addon_processes.append(proc)
    await _wait_ready(proc)
    # The Supervisor is down: the add-on keeps serving and says it will retry.
    await eventually_async(
        lambda: "Supervisor not reachable" in proc.log(),
        30,
        interval=0.1,
        what="the add-on saying it will retry",
    )
    assert proc.proc is not None and proc.proc.poll() is None
    await supervisor.start()
    try:
        await asyncio.wait_for(supervisor.received.wait(), 30)
        # The sender logs this after the accepted POST's answer and then returns: no attempt
        # can follow it, and every earlier one was recorded before it was answered.
        await eventually_async(
            lambda: "Sent discovery to Home Assistant" in proc.log(),
            30,
            interval=0.1,
            what="the add-on logging the accepted discovery",
        )
        assert len(supervisor.requests) == 1  # accepted once: no more attempts
        request = supervisor.requests[0]
        assert request["auth"] == "Bearer test-token-123"
        assert request["body"] == {
            "service": "wyoming",
            "config": {"uri": f"tcp://{socket.gethostname()}:{proc.wyoming_port}"},
        }
        assert request["wyoming_open"]
        assert (await asyncio.to_thread(proc.health))["status"] == "ok"
    finally:
        await supervisor.stop()


BAD_OPTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("beam_size", {"beam_size": 0}, "at least 1"),
    ("beam_size", {"beam_size": "wide"}, "expected int"),
    ("ttl", {"ttl": -5}, "at least 0"),
    ("preload", {"preload": "maybe"}, ""),
    ("device", {"device": "tpu"}, "'tpu' is not one of auto, cpu, cuda"),
    ("compute_type", {"compute_type": "int4"}, "'int4'"),
    ("language", {"language": "xx"}, "'xx'"),
    ("language", {"language": "de"}, "multilingual"),
    ("log_level", {"log_level": "loud"}, "'loud'"),
    ("model", {"model": []}, "at least one model"),
    ("model", {"model": "tiny.en"}, "list"),
    ("model", {"model": ["tiny-int8"]}, "unknown"),
    ("model", {"model": ["/share/whisper/missing"]}, "not a CTranslate2"),
    ("extra_args", {"extra_args": "--bogus"}, "unrecognized arguments: --bogus"),
    ("extra_args", {"extra_args": "--ttl -1"}, ">= 0"),
    ("extra_args", {"extra_args": "--language 'en"}, "quotation"),
    ("extra_args", {"extra_args": "--version"}, "start no server"),
    ("api_key", {"api_key": ["a", "list"]}, "must be text"),
    ("log_level", {"log_level": None}, ""),
]


def _run_addon(options_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "run.sh"), "--options", str(options_file)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("wyoming-whisper-addon: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("key", "change", "says"), BAD_OPTIONS, ids=[f"{k}={c[k]!r}" for k, c, _ in BAD_OPTIONS]
)
def test_a_bad_option_is_one_line_naming_it(
    tmp_path: Path, key: str, change: dict[str, Any], says: str
) -> None:
    options = {**addon.DEFAULTS, **change}
    if change[key] is None:
        del options[key]
        says = "is missing"
    (tmp_path / "options.json").write_text(json.dumps(options))
    line = _one_error_line(_run_addon(tmp_path / "options.json"))
    assert f"option '{key}'" in line and says in line, line
    if key == "api_key":
        assert "list" not in line.split(":", 2)[-1].replace("must be text", "")


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "cannot read"), ("{not json", "not valid JSON"), ("[1, 2]", "JSON object")],
)
def test_an_unreadable_options_file_is_one_line(
    tmp_path: Path, content: str | None, says: str
) -> None:
    if content is not None:
        (tmp_path / "options.json").write_text(content)
    line = _one_error_line(_run_addon(tmp_path / "options.json"))
    assert says in line, line


# --- SupervisorDiscovery against a stand-in answering in turn ------------------------------------


async def _answering(statuses: list[int]) -> tuple[web.AppRunner, int, list[str]]:
    seen: list[str] = []

    async def discovery(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        status = statuses[min(len(seen), len(statuses)) - 1]
        return web.json_response({"result": "error" if status >= 300 else "ok"}, status=status)

    app = web.Application()
    app.router.add_post("/discovery", discovery)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port, seen


async def test_discovery_retries_a_supervisor_that_is_not_ready() -> None:
    runner, port, seen = await _answering([502, 503, 200])
    try:
        sender = SupervisorDiscovery(f"http://127.0.0.1:{port}", "t", 10300, "h", first_delay=0.05)
        assert await asyncio.wait_for(sender.send(), 10) is True
        assert seen == ["Bearer t"] * 3
    finally:
        await runner.cleanup()


async def test_discovery_gives_up_once_when_refused(caplog: pytest.LogCaptureFixture) -> None:
    runner, port, seen = await _answering([401])
    try:
        sender = SupervisorDiscovery(f"http://127.0.0.1:{port}", "t", 10300, "h", first_delay=0.05)
        assert await asyncio.wait_for(sender.send(), 10) is False
        assert len(seen) == 1 and "refused discovery (HTTP 401" in caplog.text
    finally:
        await runner.cleanup()


async def test_discovery_stops_retrying_on_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wyoming_whisper.discovery")
    sender = SupervisorDiscovery(f"http://127.0.0.1:{free_port()}", "t", 10300, "h")
    sender.start()
    # The first attempt failed: the sender logs this just before it waits out the back-off.
    await eventually_async(
        lambda: "Supervisor not reachable" in caplog.text, 10, what="the first attempt failed"
    )
    started = time.monotonic()
    await sender.stop()
    assert time.monotonic() - started < 1
