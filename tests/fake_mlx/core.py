"""Fake ``mlx.core``: just what MlxBackend touches (dtypes, streams, the buffer cache)."""

from __future__ import annotations

from typing import Any

float16 = "float16"
float32 = "float32"
STATE: dict[str, int] = {"cache_clears": 0, "streams": 0}


def default_device() -> str:
    return "gpu"


def new_stream(device: Any) -> int:
    STATE["streams"] += 1
    return STATE["streams"]


def set_default_stream(stream: Any) -> None:
    pass


def clear_cache() -> None:
    STATE["cache_clears"] += 1
