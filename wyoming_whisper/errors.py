"""One error type per kind of fault, raised deep and turned into a reply at each front door.

HTTP maps ``status``/``type``/``code``/``param`` onto OpenAI's error body, Wyoming sends an
``error`` event with ``code`` and the message, the streaming WebSocket sends ``{"type": "error"}``
and Realtime an ``error`` event with ``code`` and ``param``.
"""

from __future__ import annotations

# What every front door says of a fault that is ours, not the client's (the log has the rest).
INTERNAL_MESSAGE = "internal server error; see the server log"


class WhisperError(Exception):
    """A fault with a message that is safe and useful to show the client."""

    status = 500
    type = "server_error"
    code: str | None = None
    retry_after: int | None = None  # seconds, sent as Retry-After on a 503

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequest(WhisperError):
    """The client asked for something malformed or out of range."""

    status = 400
    type = "invalid_request_error"


class BadAudio(InvalidRequest):
    """The audio could not be decoded, or holds no samples."""

    code = "invalid_audio"


class ModelNotFound(InvalidRequest):
    """The client named a model that this server does not serve."""

    code = "model_not_found"


class Unsupported(InvalidRequest):
    """The model cannot do what was asked (translation with an English-only model)."""

    code = "unsupported"


class Unauthorized(WhisperError):
    """The API key is missing or wrong (only when the server was started with --api-key)."""

    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class Forbidden(WhisperError):
    """A web page of another site (a foreign Origin, a rebound Host) may not do this."""

    status = 403
    type = "invalid_request_error"
    code = "forbidden_origin"


class TooLarge(WhisperError):
    """The upload or audio is larger than the configured limit."""

    status = 413
    type = "invalid_request_error"
    code = "too_large"


class Busy(WhisperError):
    """The queue for this model is full; the client should retry after ``retry_after`` seconds."""

    status = 503
    type = "server_error"
    code = "server_busy"

    def __init__(self, message: str, *, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class ModelLoadError(WhisperError):
    """A model could not be found or loaded; the next request tries again."""

    status = 503
    type = "server_error"
    code = "model_unavailable"


class OutOfMemory(WhisperError):
    """A decode could not get memory (RAM or GPU): the server's condition, not the client's."""

    status = 503
    type = "server_error"
    code = "out_of_memory"
    retry_after = 5


# How the native libraries word an allocation failure: CTranslate2 on CPU (MKL, oneDNN, its own
# allocator), CUDA and cuBLAS, PyTorch (mlx-whisper's dependencies), C++'s bad_alloc.
_OOM_MARKERS = (
    "out of memory",
    "failed to allocate",
    "bad_alloc",
    "cannot allocate memory",
    "cublas_status_alloc_failed",
    "can't start new thread",  # a pool's next worker: no memory left for its stack
    "could not create a memory object",  # oneDNN (CTranslate2's CPU kernels)
)


def is_out_of_memory(err: BaseException) -> bool:
    """True for an exception that means an allocation failed."""
    if isinstance(err, MemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, (RuntimeError, OSError)) and any(m in text for m in _OOM_MARKERS)


class Abandoned(WhisperError):
    """Speculative work (an early decode, a partial) gave up instead of paying for a fallback.

    Only background work is speculative, so no client sees this: its owner decodes again, in
    full, when the answer is due.
    """

    status = 503
    code = "abandoned"
