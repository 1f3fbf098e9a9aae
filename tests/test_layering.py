"""The import rules of docs/architecture.md, checked on every module of the package: the
picture of who may import whom cannot drift without this test saying so."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "wyoming_whisper"

DOORS = (
    "wyoming_whisper.http",
    "wyoming_whisper.http.*",
    "wyoming_whisper.wyoming_handler",
    "wyoming_whisper.wyoming_utterance",
)
BACKENDS = ("wyoming_whisper.backends.*",)
STREAMING = ("wyoming_whisper.streaming", "wyoming_whisper.streaming.*")
ABOVE_BACKENDS = tuple(
    f"wyoming_whisper.{name}"
    for name in (
        "engine", "admission", "assist_commands", "server", "streaming", "streaming.*", "request",
        "config", "config_flags", "commands", "commands.*", "wyoming_handler", "wyoming_utterance",
        "http", "http.*",
        "models",
        "models.*",
    )
)  # fmt: skip
# faster-whisper's public API: its package and the names it exports (__all__, 1.2.1); the rest
# of it (faster_whisper.vad, .utils, .transcribe, ...) is its internals.
FASTER_WHISPER_PUBLIC = (
    "faster_whisper",
    *(
        f"faster_whisper.{name}"
        for name in (
            "available_models", "decode_audio", "WhisperModel", "BatchedInferencePipeline",
            "download_model", "format_timestamp", "__version__",
        )
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Rule:
    """Modules matching ``importer`` (but not ``exempt``) never import one matching
    ``forbidden`` (fnmatch patterns on dotted names), except those matching ``allowed``."""

    why: str
    importer: tuple[str, ...]
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()  # importers matching ``importer`` that the rule leaves free

    def broken_by(self, module: str, imported: str) -> bool:
        return (
            _matches(module, self.importer)
            and not _matches(module, self.exempt)
            and _matches(imported, self.forbidden)
            and not _matches(imported, self.allowed)
        )


RULES = (
    Rule(
        "a front door never imports a backend, only their common types",
        DOORS,
        ("wyoming_whisper.backends", "wyoming_whisper.backends.*"),
        ("wyoming_whisper.backends.base",),
    ),
    Rule(
        "a backend never imports a protocol library or anything above it",
        BACKENDS,
        ("aiohttp", "aiohttp.*", "wyoming", "wyoming.*", *ABOVE_BACKENDS),
    ),
    Rule(
        "one front door never imports another",
        ("wyoming_whisper.http.*",),
        (
            "wyoming_whisper.wyoming_handler",
            "wyoming_whisper.wyoming_utterance",
            "wyoming_whisper.framing",
        ),
    ),
    Rule(
        "one front door never imports another",
        (
            "wyoming_whisper.wyoming_handler",
            "wyoming_whisper.wyoming_utterance",
            "wyoming_whisper.framing",
        ),
        ("wyoming_whisper.http", "wyoming_whisper.http.*", "aiohttp", "aiohttp.*"),
    ),
    Rule(
        "the streaming package knows the backends through backends.base, and faster-whisper's "
        "Silero VAD through faster_whisper_internals (whichever backend decodes)",
        STREAMING,
        ("wyoming_whisper.backends", "wyoming_whisper.backends.*"),
        ("wyoming_whisper.backends.base", "wyoming_whisper.backends.faster_whisper_internals"),
    ),
    Rule(
        "faster-whisper's internals are named in backends/faster_whisper_internals.py only",
        ("wyoming_whisper", "wyoming_whisper.*"),
        ("faster_whisper", "faster_whisper.*"),
        FASTER_WHISPER_PUBLIC,
        ("wyoming_whisper.backends.faster_whisper_internals",),
    ),
    Rule(
        "faster_whisper_internals imports nothing of ours, so the streaming package imports it "
        "alone",
        ("wyoming_whisper.backends.faster_whisper_internals",),
        ("wyoming_whisper", "wyoming_whisper.*"),
    ),
    Rule(
        "a request is checked below the engine: request.py imports no engine, door or server",
        ("wyoming_whisper.request",),
        (
            "wyoming_whisper.engine",
            "wyoming_whisper.admission",
            "wyoming_whisper.assist_commands",
            *STREAMING,
            "wyoming_whisper.server",
            *DOORS,
        ),
    ),
    Rule(
        "the engine's parts (admission, the command step) never import the engine, a door or "
        "the server",
        ("wyoming_whisper.admission", "wyoming_whisper.assist_commands"),
        ("wyoming_whisper.engine", "wyoming_whisper.server", *STREAMING, *DOORS),
    ),
    Rule(
        "the model manager loads through the backend protocol only",
        ("wyoming_whisper.models.manager",),
        ("wyoming_whisper.backends.*", "wyoming_whisper.engine", "wyoming_whisper.http.*"),
        ("wyoming_whisper.backends.base",),
    ),
    Rule(
        "Home Assistant's sentences are pure: the commands package imports nothing of ours but "
        "its own modules and the RE2 patterns of hassil's templates",
        ("wyoming_whisper.commands", "wyoming_whisper.commands.*"),
        ("wyoming_whisper", "wyoming_whisper.*"),
        (
            "wyoming_whisper.commands",
            "wyoming_whisper.commands.*",
            "wyoming_whisper.linear_patterns",
        ),
    ),
    Rule(
        "the leaves (errors, words, languages, malloc, linear_patterns) import no other module "
        "of ours but errors",
        (
            "wyoming_whisper.linear_patterns",
            "wyoming_whisper.errors",
            "wyoming_whisper.words",
            "wyoming_whisper.languages",
            "wyoming_whisper.malloc",
        ),
        ("wyoming_whisper.*",),
        ("wyoming_whisper.errors",),
    ),
)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(module: str, source: str, is_package: bool = False) -> set[str]:
    """Every module ``source`` imports (relative imports resolved; ``from a import b`` counts
    as ``a.b`` when b may be a module, and as ``a``), type-checking-only imports included."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                parent = ".".join([*base, *([node.module] if node.module else [])])
            else:
                parent = node.module or ""
            found.add(parent)
            found.update(f"{parent}.{alias.name}" for alias in node.names)
    return found


def broken(module: str, imported: set[str], package: set[str]) -> list[str]:
    """The rules ``module`` breaks; of the ``from a import b`` names only real modules count."""
    real = {name for name in imported if not name.startswith("wyoming_whisper") or name in package}
    return [
        f"{module} imports {name}: {rule.why}"
        for rule in RULES
        for name in sorted(real)
        if rule.broken_by(module, name)
    ]


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_keeps_the_import_rules() -> None:
    modules = package_modules()
    assert len(modules) > 30 and "wyoming_whisper.engine" in modules
    found = [
        problem
        for module, path in modules.items()
        for problem in broken(
            module, imports(module, path.read_text(), path.name == "__init__.py"), set(modules)
        )
    ]
    assert not found, "\n".join(found)


def test_a_forbidden_import_is_caught() -> None:
    """The check itself can fail: each rule, broken on purpose in a module's source."""
    modules = set(package_modules())
    cases = [
        (
            "wyoming_whisper.http.openai.transcription",
            "from ...backends.faster_whisper import FasterWhisperModel",
        ),
        ("wyoming_whisper.wyoming_handler", "from .backends import select"),
        ("wyoming_whisper.backends.mlx", "import aiohttp"),
        ("wyoming_whisper.backends.faster_whisper", "from ..engine import Engine"),
        ("wyoming_whisper.backends.ctranslate2_models", "from .. import models"),
        ("wyoming_whisper.http.websocket", "from ..wyoming_handler import WhisperEventHandler"),
        ("wyoming_whisper.framing", "from .http.errors import error_body"),
        ("wyoming_whisper.models.manager", "from ..backends.faster_whisper import X"),
        ("wyoming_whisper.streaming", "from .backends.faster_whisper import FasterWhisperModel"),
        ("wyoming_whisper.streaming", "from faster_whisper.vad import get_vad_model"),
        ("wyoming_whisper.streaming.vad", "from ..backends.faster_whisper import X"),
        ("wyoming_whisper.streaming.vad", "from faster_whisper.vad import get_vad_model"),
        ("wyoming_whisper.backends.base", "from ..streaming.live import LiveText"),
        ("wyoming_whisper.request", "from .streaming.stream import Stream"),
        ("wyoming_whisper.backends.ctranslate2_models", "from faster_whisper.utils import _MODELS"),
        ("wyoming_whisper.backends.faster_whisper_internals", "from .base import SAMPLE_RATE"),
        ("wyoming_whisper.commands", "from wyoming_whisper.errors import BadAudio"),
        ("wyoming_whisper.commands.matcher", "from .. import config"),
        ("wyoming_whisper.commands.home", "from ..words import alike"),
        ("wyoming_whisper.words", "from . import config"),
        ("wyoming_whisper.request", "from .engine import Engine"),
        ("wyoming_whisper.assist_commands", "from .engine import Engine"),
        ("wyoming_whisper.admission", "from .http.errors import error_body"),
    ]
    for module, line in cases:
        assert broken(module, imports(module, line), modules), (module, line)
    allowed = [
        ("wyoming_whisper.http.openai.events", "from ...backends.base import Result"),
        ("wyoming_whisper.languages", "from .errors import BadRequest"),
        ("wyoming_whisper.backends.mlx", "from .base import Result"),
        ("wyoming_whisper.backends.faster_whisper", "from .ctranslate2_models import resolve"),
        (
            "wyoming_whisper.streaming",
            "from .backends.faster_whisper_internals import SileroSession",
        ),
        (
            "wyoming_whisper.streaming.vad",
            "from ..backends.faster_whisper_internals import SileroSession",
        ),
        ("wyoming_whisper.streaming.decodes", "from ..backends.base import Result"),
        ("wyoming_whisper.backends.faster_whisper_internals", "from faster_whisper.vad import X"),
        ("wyoming_whisper.backends.encoder_window", "from faster_whisper import WhisperModel"),
        ("wyoming_whisper.assist_commands", "from .admission import Admission"),
        ("wyoming_whisper.commands.matcher", "from .recognizer import Recognizer"),
        ("wyoming_whisper.commands.recognizer", "from ..linear_patterns import linear"),
    ]
    for module, line in allowed:
        assert not broken(module, imports(module, line), modules), (module, line)


def engine_internals(source: str) -> list[str]:
    """Where ``source`` reaches past the engine's facade into its model manager
    (``engine.manager``, ``self.engine.manager``, ``request.app[ENGINE].manager``)."""
    return [
        f"line {node.lineno}: .manager"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and node.attr == "manager"
    ]


def test_doors_ask_the_engine_not_its_model_manager() -> None:
    """The doors show models through Engine.served / model_status / unload, so the manager can
    change without touching a protocol."""
    modules = package_modules()
    doors = [m for m in modules if _matches(m, DOORS)]
    assert "wyoming_whisper.http.openai.models" in doors and len(doors) > 10
    found = [
        f"{module} {problem}"
        for module in doors
        for problem in engine_internals(modules[module].read_text())
    ]
    assert not found, "\n".join(found)
    assert engine_internals("status = engine.manager.status()")  # the check itself can fail
