"""A stand-in for mlx-whisper where Metal is needed, backed by faster-whisper on the CPU.

``install(monkeypatch)`` puts modules named ``mlx_whisper``, ``mlx_whisper.transcribe``,
``mlx_whisper.load_models``, ``mlx_whisper.tokenizer`` and ``mlx.core`` into sys.modules. The
transcribe function keeps mlx-whisper 0.4's signature and decode loop shape (a tqdm bar updated
after each window's segments are appended to ``all_segments``; a ``ModelHolder``), so MlxBackend's
real code runs against it.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from . import core, tokenizer, transcribe


def install(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    package = types.ModuleType("mlx_whisper")
    package.__path__ = []  # a package, so "mlx_whisper.transcribe" imports resolve to ours
    load_models = types.ModuleType("mlx_whisper.load_models")
    load_models.load_model = transcribe.load_model  # type: ignore[attr-defined]
    package.transcribe = transcribe.transcribe  # type: ignore[attr-defined]
    package.load_models = load_models  # type: ignore[attr-defined]
    mlx = types.ModuleType("mlx")
    mlx.__path__ = []
    mlx.core = core  # type: ignore[attr-defined]
    modules: dict[str, Any] = {
        "mlx_whisper": package,
        "mlx_whisper.transcribe": transcribe,
        "mlx_whisper.load_models": load_models,
        "mlx_whisper.tokenizer": tokenizer,
        "mlx": mlx,
        "mlx.core": core,
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    transcribe.ModelHolder.model = transcribe.ModelHolder.model_path = None
    transcribe.CALLS.clear()
    transcribe.LOADS.clear()
    core.STATE.update(cache_clears=0, streams=0)
    return types.SimpleNamespace(transcribe=transcribe, core=core)
