"""A stream's decodes: admitted like any request, run as background tasks, cancelled and waited
for, their faults taken."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backends.base import CancelToken, Result, Segment, TranscribeOptions
from ..engine import Engine
from ..errors import WhisperError

_LOGGER = logging.getLogger(__package__)


@dataclass
class Pending:
    """A background decode of ``audio[:end]``."""

    end: int
    task: asyncio.Task[Result]
    token: CancelToken


async def decode(
    engine: Engine,
    model: str,
    audio: np.ndarray,
    options: TranscribeOptions,
    on_segment: Callable[[Segment], None] | None = None,
    *,
    token: CancelToken | None = None,
) -> Result:
    """One decode of a stream (early, live or final), holding an admission slot while it runs."""
    with engine.admission.admit(model):
        return await engine.transcribe(audio, options, model, on_segment, token=token)


async def cancelled(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel background decodes and wait until they have let go of their workers and slots."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # our caller is cancelled, not just the task we cancelled
        except Exception:  # already taken, and logged when a bug, by retrieve
            pass


def retrieve(task: asyncio.Task) -> None:
    """Take a background decode's exception, so asyncio does not report it as never retrieved;
    a fault that is not a WhisperError (a bug) is logged once, with its traceback."""
    if not task.cancelled():
        err = task.exception()
        if err is not None and not isinstance(err, WhisperError):
            _LOGGER.error("Background decode failed", exc_info=err)
