"""Which native failures count as out of memory (503, retry) rather than a bug (500)."""

from __future__ import annotations

import pytest

from wyoming_whisper.errors import OutOfMemory, is_out_of_memory


@pytest.mark.parametrize(
    "err",
    [
        MemoryError(),
        RuntimeError("mkl_malloc: failed to allocate memory"),
        RuntimeError("CUDA failed with error out of memory"),
        RuntimeError("cuBLAS failed with status CUBLAS_STATUS_ALLOC_FAILED"),
        RuntimeError("std::bad_alloc"),
        OSError(12, "Cannot allocate memory"),
        RuntimeError("can't start new thread"),  # a thread pool's next worker
        RuntimeError("could not create a memory object"),  # oneDNN
    ],
)
def test_allocation_failures_are_out_of_memory(err: BaseException) -> None:
    assert is_out_of_memory(err)


@pytest.mark.parametrize(
    "err",
    [
        RuntimeError("Unsupported model binary version"),
        ValueError("out of memory"),  # only the native libraries' error types count
        OSError(2, "No such file or directory"),
        KeyError("memory"),
    ],
)
def test_other_failures_are_not(err: BaseException) -> None:
    assert not is_out_of_memory(err)


def test_out_of_memory_is_a_retryable_503() -> None:
    err = OutOfMemory("no memory")
    assert (err.status, err.type, err.code, err.retry_after) == (
        503,
        "server_error",
        "out_of_memory",
        5,
    )
