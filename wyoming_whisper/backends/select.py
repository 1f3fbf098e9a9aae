"""Automatic choice of backend, device and compute type: a pure function over platform facts.

The facts are gathered once by ``detect_platform``; tests inject their own, so the CUDA and Apple
paths are exercised on any machine.
"""

from __future__ import annotations

import importlib.util
import platform as _platform
from dataclasses import dataclass

from .base import Backend


class SelectionError(ValueError):
    """The asked-for backend or device cannot run on this machine."""


@dataclass(frozen=True)
class PlatformFacts:
    system: str  # platform.system(): "Linux", "Darwin", "Windows"
    machine: str  # platform.machine(): "x86_64", "arm64", "aarch64"
    mlx_available: bool  # mlx_whisper importable
    cuda_devices: int  # CUDA devices CTranslate2 can see

    @property
    def apple_silicon(self) -> bool:
        return self.system == "Darwin" and self.machine == "arm64"


@dataclass(frozen=True)
class Selection:
    backend: str  # "faster-whisper" | "mlx"
    device: str  # "cpu" | "cuda" | "metal"
    device_index: int
    compute_type: str

    @property
    def device_label(self) -> str:
        return f"cuda:{self.device_index}" if self.device == "cuda" else self.device


MLX_HINT = (
    "the mlx backend needs macOS on Apple silicon with mlx-whisper installed: "
    "pip install 'wyoming-whisper[mlx]'"
)


def detect_platform() -> PlatformFacts:
    """Look at this machine once (cheap: no model is loaded, no GPU memory is taken)."""
    system, machine = _platform.system(), _platform.machine()
    mlx = system == "Darwin" and machine == "arm64" and _importable("mlx_whisper")
    return PlatformFacts(system, machine, mlx, _cuda_device_count())


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _cuda_device_count() -> int:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # no CTranslate2, or a broken CUDA driver: both mean "no GPU here"
        return 0


def select(backend: str, device: str, compute_type: str, facts: PlatformFacts) -> Selection:
    """Resolve ``auto`` values against the platform; raise SelectionError for impossible asks."""
    if backend == "auto":
        backend = "mlx" if facts.apple_silicon and facts.mlx_available else "faster-whisper"
    if backend == "mlx":
        if not (facts.apple_silicon and facts.mlx_available):
            raise SelectionError(MLX_HINT)
        if device not in ("auto", "metal", "mps", "cpu"):
            raise SelectionError(f"device {device!r} is not available with the mlx backend")
        return Selection("mlx", "metal", 0, "float16" if compute_type == "auto" else compute_type)

    if device == "auto":
        kind, index = ("cuda", 0) if facts.cuda_devices > 0 else ("cpu", 0)
    elif device.startswith("cuda"):
        kind, _, idx = device.partition(":")
        index = int(idx or 0)
        if facts.cuda_devices == 0:
            raise SelectionError(f"device {device!r} asked for, but no CUDA device is visible")
        if index >= facts.cuda_devices:
            raise SelectionError(
                f"device {device!r} asked for, but only {facts.cuda_devices} CUDA device(s) exist"
            )
    elif device == "cpu":
        kind, index = "cpu", 0
    else:
        raise SelectionError(f"device {device!r} is not available with the faster-whisper backend")

    if compute_type == "auto":
        compute_type = "float16" if kind == "cuda" else "int8"
    return Selection("faster-whisper", kind, index, compute_type)


def create_backend(
    selection: Selection, workers: int, encoder_window: str = "auto", threads: int = 0
) -> Backend:
    """Instantiate the selected backend (imports only that backend's library)."""
    if selection.backend == "mlx":
        from .mlx import MlxBackend

        return MlxBackend(selection.compute_type)
    from .faster_whisper import FasterWhisperBackend

    return FasterWhisperBackend(
        selection.device,
        selection.device_index,
        selection.compute_type,
        num_workers=workers,
        encoder_window=encoder_window,
        cpu_threads=threads,
    )
