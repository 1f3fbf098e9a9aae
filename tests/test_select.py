"""Backend selection over simulated platforms (pure), and --backend mlx failing cleanly here."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wyoming_whisper.backends.mlx import MlxBackend
from wyoming_whisper.backends.select import (
    MLX_HINT,
    PlatformFacts,
    SelectionError,
    create_backend,
    detect_platform,
    select,
)

from .harness import REPO

MAC = PlatformFacts("Darwin", "arm64", mlx_available=True, cuda_devices=0)
MAC_NO_MLX = PlatformFacts("Darwin", "arm64", mlx_available=False, cuda_devices=0)
INTEL_MAC = PlatformFacts("Darwin", "x86_64", mlx_available=False, cuda_devices=0)
LINUX_CUDA = PlatformFacts("Linux", "x86_64", mlx_available=False, cuda_devices=2)
LINUX_CPU = PlatformFacts("Linux", "x86_64", mlx_available=False, cuda_devices=0)


def test_auto_picks_mlx_on_apple_silicon_with_mlx_whisper() -> None:
    sel = select("auto", "auto", "auto", MAC)
    assert (sel.backend, sel.device, sel.compute_type) == ("mlx", "metal", "float16")
    assert isinstance(create_backend(sel, workers=1), MlxBackend)  # constructing imports no mlx


def test_auto_on_a_mac_without_mlx_whisper_or_on_intel_is_faster_whisper_cpu() -> None:
    for facts in (MAC_NO_MLX, INTEL_MAC):
        sel = select("auto", "auto", "auto", facts)
        assert (sel.backend, sel.device, sel.compute_type) == ("faster-whisper", "cpu", "int8")


def test_auto_on_linux_never_picks_mlx() -> None:
    sel = select("auto", "auto", "auto", LINUX_CUDA)
    assert (sel.backend, sel.device_label, sel.compute_type) == (
        "faster-whisper",
        "cuda:0",
        "float16",
    )
    sel = select("auto", "auto", "auto", LINUX_CPU)
    assert (sel.backend, sel.device, sel.compute_type) == ("faster-whisper", "cpu", "int8")
    # Even a Linux box that can import mlx_whisper (MLX has CPU builds) is not Apple silicon.
    odd = PlatformFacts("Linux", "aarch64", mlx_available=True, cuda_devices=0)
    assert select("auto", "auto", "auto", odd).backend == "faster-whisper"


def test_cpu_threads_reach_the_backend() -> None:
    """--cpu-threads (config.threads) is what CTranslate2 is loaded with, per worker."""
    from wyoming_whisper.backends.faster_whisper import FasterWhisperBackend

    backend = create_backend(select("auto", "auto", "auto", LINUX_CPU), workers=2, threads=1)
    assert isinstance(backend, FasterWhisperBackend)
    assert (backend.num_workers, backend.cpu_threads) == (2, 1)


@pytest.mark.parametrize("facts", [MAC_NO_MLX, INTEL_MAC, LINUX_CPU, LINUX_CUDA])
def test_backend_mlx_where_it_cannot_run(facts: PlatformFacts) -> None:
    with pytest.raises(SelectionError, match="macOS on Apple silicon") as err:
        select("mlx", "auto", "auto", facts)
    assert str(err.value) == MLX_HINT and "pip install 'wyoming-whisper[mlx]'" in MLX_HINT


def test_backend_mlx_devices_and_compute_types() -> None:
    assert select("mlx", "metal", "float32", MAC).compute_type == "float32"
    with pytest.raises(SelectionError, match="not available with the mlx backend"):
        select("mlx", "cuda", "auto", MAC)
    assert select("faster-whisper", "auto", "auto", MAC).backend == "faster-whisper"


def test_this_machine_is_not_apple_silicon() -> None:
    facts = detect_platform()
    assert not facts.apple_silicon and not facts.mlx_available


def test_cli_backend_mlx_exits_2_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wyoming_whisper", "--backend", "mlx", "-m", "tiny.en"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "macOS on Apple silicon" in lines[0]
    assert "pip install 'wyoming-whisper[mlx]'" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
