"""Packaging lints that CI runs: yamllint on every YAML file, hadolint on the Dockerfile, and the
Dockerfile's targets checked for what the images promise (same entry module, health, volume, user).
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml

from wyoming_whisper.config import load_config

from .harness import REPO, repository_files

DOCKERFILE = REPO / "Dockerfile"


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:  # a missing linter is a broken CI set-up, not a reason to pass
        pytest.fail(f"{name} is not installed: pip install -e '.[test]' installs it")
    return path


def test_yamllint_finds_nothing() -> None:
    yaml_files = [f for f in repository_files() if f.endswith((".yaml", ".yml", ".yamllint"))]
    assert "config.yaml" in yaml_files and ".github" not in yaml_files
    result = subprocess.run(
        [_tool("yamllint"), "--strict", "-f", "parsable", *yaml_files],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", str(DOCKERFILE)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


# --- the Dockerfile's targets --------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            lines.append(current.strip())
        current = ""
    return lines


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.IGNORECASE)
            assert match, line
            base, name = match[1], match[2] or str(len(stages))
            parent = next((s for s in stages if s.name == base), None)
            stage = Stage(name, base)
            if parent is not None:  # FROM an earlier stage inherits its entry
                stage.entrypoint, stage.cmd = list(parent.entrypoint), list(parent.cmd)
            stages.append(stage)
        elif stages:
            stage = stages[-1]
            stage.instructions.append((keyword, rest.strip()))
            if keyword in ("ENTRYPOINT", "CMD"):
                value = json.loads(rest)  # exec form only: a shell form would eat signals
                assert isinstance(value, list), line
                if keyword == "ENTRYPOINT":
                    stage.entrypoint, stage.cmd = value, []
                else:
                    stage.cmd = value
    return stages


def _resolve_script(command: list[str], stage: Stage) -> list[str]:
    """A script the stage COPYs from this repository -> the command its ``exec`` line runs."""
    copies = {
        dest: src
        for src, dest in (r.split()[-2:] for r in stage.args("COPY") if len(r.split()) >= 2)
    }
    if command and command[0] in copies:
        script = (REPO / copies[command[0]]).read_text()
        exec_line = next(line for line in script.splitlines() if line.startswith("exec "))
        words = shlex.split(exec_line)[1:]
        words = [re.sub(r"^\$\{\w+:-(.+)\}$", r"\1", w) for w in words]  # ${PYTHON:-python3}
        words = [w for w in words if w != "$@"]  # the script's own arguments follow
        return [*words, *command[1:]]
    return command


def _module(command: list[str]) -> str:
    assert Path(command[0]).name in ("python", "python3"), command
    assert command[1] == "-m", command
    return command[2]


STAGES = {s.name: s for s in parse_dockerfile(DOCKERFILE.read_text())}


def test_three_targets_and_the_addon_is_last() -> None:
    assert set(STAGES) >= {"cpu", "cuda", "addon"}
    # The Supervisor builds without --target: the add-on must be the final stage.
    assert list(STAGES)[-1] == "addon"
    assert STAGES["addon"].base == "${BUILD_FROM}"
    assert "nvidia/cuda" in STAGES["cuda"].base and "cudnn" in STAGES["cuda"].base


def test_every_target_runs_the_same_module() -> None:
    modules = {}
    for name in ("cpu", "cuda", "addon"):
        stage = STAGES[name]
        command = _resolve_script([*stage.entrypoint, *stage.cmd], stage)
        modules[name] = _module(command)
        assert find_spec(modules[name]) is not None, modules[name]
    # The standalone images run the server module itself; the add-on's entry maps options.json
    # onto the same server's flags and calls the same wyoming_whisper.__main__.main.
    assert modules["cpu"] == modules["cuda"] == "wyoming_whisper"
    assert modules["addon"] == "wyoming_whisper.addon"
    source = (REPO / "wyoming_whisper" / "addon.py").read_text()
    assert "from .__main__ import main as server_main" in source


@pytest.mark.parametrize("name", ["cpu", "cuda", "addon"])
def test_every_target_checks_health(name: str) -> None:
    (health,) = STAGES[name].args("HEALTHCHECK")
    command = json.loads(health[health.index("CMD") + 3 :])
    assert _module(command) == "wyoming_whisper.healthcheck"


@pytest.mark.parametrize(("name", "device"), [("cpu", "cpu"), ("cuda", "cuda")])
def test_standalone_images_run_unprivileged_with_a_model_volume(name: str, device: str) -> None:
    stage = STAGES[name]
    (user,) = stage.args("USER")
    assert user.split(":")[0] not in ("0", "root")
    (volume,) = stage.args("VOLUME")
    cache = re.search(r"WHISPER_CACHE_DIR=(\S+)", " ".join(stage.args("ENV")))
    assert cache and json.loads(volume) == [cache[1]]
    assert f"WHISPER_DEVICE={device}" in " ".join(stage.args("ENV"))
    # A model can be baked in at build time, before the volume is declared.
    runs = [i for i, (kw, rest) in enumerate(stage.instructions) if "--download-only" in rest]
    declared = next(i for i, (kw, _) in enumerate(stage.instructions) if kw == "VOLUME")
    assert runs and runs[0] < declared


def test_compose_has_cpu_and_cuda_profiles_built_from_the_targets() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    targets = {}
    for service in compose["services"].values():
        (profile,) = service["profiles"]
        targets[profile] = service["build"]["target"]
        env = service["environment"]
        assert {"WHISPER_MODEL", "WHISPER_TTL", "WHISPER_LOG_LEVEL", "WHISPER_EXTRA_ARGS"} <= set(
            env
        )
    assert targets == {"cpu": "cpu", "cuda": "cuda"}


def test_the_images_environment_variables_are_honoured() -> None:
    config = load_config(
        [],
        {
            "WHISPER_MODEL": "small",
            "WHISPER_TTL": "42",
            "WHISPER_DEVICE": "cuda",
            "WHISPER_LOG_LEVEL": "debug",
            "WHISPER_EXTRA_ARGS": "--beam-size 3 --api-key k",
            "WHISPER_CACHE_DIR": "/models",
        },
    )
    assert config.models == ("small",) and config.ttl == 42 and config.device == "cuda"
    assert config.log_level == "debug" and config.beam_size == 3 and config.api_key == "k"
    assert str(config.cache_dir) == "/models"


@functools.cache
def _lock() -> list[dict]:
    with open(REPO / "uv.lock", "rb") as f:
        return list(tomllib.load(f)["package"])


def _locked_versions(name: str) -> set[str]:
    """uv.lock's versions of ``name`` (two where Python versions need different releases)."""
    return {p["version"] for p in _lock() if p["name"] == name}


@pytest.mark.parametrize("target", ["cpu", "cuda", "addon"])
def test_images_install_the_locked_versions(target: str) -> None:
    """Every image installs requirements/runtime.txt as locked, then the server without
    resolving anything: a build months later gets the versions CI tested."""
    runs = [r for r in STAGES[target].args("RUN") if "pip install" in r]
    assert runs[0] == "pip install --no-cache-dir --no-deps -r requirements/runtime.txt"
    assert all("--no-deps" in r for r in runs), runs
    assert "COPY requirements/runtime.txt ./requirements/" in [
        f"COPY {r}" for r in STAGES[target].args("COPY")
    ]
    for pin in re.findall(r'"([\w.-]+)==([\w.]+)"', " ".join(runs)):
        assert _locked_versions(pin[0]) == {pin[1]}, pin


def test_runtime_requirements_pin_every_package_with_hashes() -> None:
    text = (REPO / "requirements" / "runtime.txt").read_text()
    pins = re.findall(r"^([\w.-]+)==([\w.]+)", text, re.MULTILINE)
    assert {"faster-whisper", "ctranslate2", "wyoming", "aiohttp"} <= {n for n, _ in pins}
    for name, version in pins:
        assert version in _locked_versions(name), (name, version)
    assert text.count("--hash=sha256:") >= len(pins)


def test_the_architecture_note_names_every_module() -> None:
    """docs/architecture.md says where everything lives: a new module must be placed there."""
    note = (REPO / "docs" / "architecture.md").read_text()
    package = REPO / "wyoming_whisper"
    modules = {
        p.relative_to(package).as_posix()
        for p in package.rglob("*.py")
        if p.name != "__init__.py" and p.parent.name != "static"
    }
    missing = sorted(m for m in modules if f"`{m}`" not in note)
    assert not missing, f"not in docs/architecture.md: {missing}"


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, relative ones spelled as written (``.conftest``)."""
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            found.add(module)
            if not node.module:  # ``from . import conftest``
                found.update(module + alias.name for alias in node.names)
    return found


def test_no_bench_or_test_module_imports_the_conftest() -> None:
    """A conftest is pytest's to load, not a library: the benches and the tests' helpers import
    the server process, the recordings and the waits from tests/harness.py."""
    files = [f for f in repository_files() if f.endswith(".py")]
    scanned = [f for f in files if f.startswith(("bench/", "tests/"))]
    assert any(f.startswith("bench/") for f in scanned) and "tests/harness.py" in scanned
    offenders = {
        f: sorted(m for m in _imported_modules(REPO / f) if m.split(".")[-1] == "conftest")
        for f in scanned
    }
    offenders = {f: m for f, m in offenders.items() if m}
    assert not offenders, f"import tests.harness instead: {offenders}"
