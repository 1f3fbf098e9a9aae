"""Property-based fuzzing of the Wyoming reader and the multipart upload, against one real server.

For every generated input the server answers (an error event, or a 4xx) or hangs up, within a
few seconds, never with a 5xx or an internal error; afterwards a good request still succeeds.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .harness import ServerProcess, clip
from .http_helpers import SHORT, post_audio, short_ok

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(["-m", "tiny.en", "--preload", "--no-zeroconf"])
    srv.start(tmp_path_factory.mktemp("fuzz"))
    yield srv
    assert srv.stop() == 0
    assert "Traceback" not in srv.log() and "Unexpected error" not in srv.log()


# -- Wyoming ----------------------------------------------------------------------------------

TYPES = ["transcribe", "audio-start", "audio-chunk", "audio-stop", "describe", "ping", "x", ""]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
audio_data = st.fixed_dictionaries(
    {},
    optional={
        "rate": st.sampled_from([16000, 8000, 0, -1, 48000, 10**9]) | json_values,
        "width": st.sampled_from([1, 2, 3, 4, 0, 9]) | json_values,
        "channels": st.sampled_from([1, 2, 0, 300]) | json_values,
        "timestamp": json_values,
        "name": json_values,
        "language": json_values,
    },
)


@st.composite
def wyoming_event(draw: st.DrawFn) -> bytes:
    """One framed event, often subtly wrong: lengths that lie, payloads without a header..."""
    kind = draw(st.integers(0, 5))
    if kind == 0:  # raw garbage, maybe with newlines
        return draw(st.binary(max_size=300))
    if kind == 1:  # a line that is not a JSON object
        return draw(st.sampled_from([b"{", b"[]", b"null", b'"x"', b"{}", b"\xff\xfe"])) + b"\n"
    payload = draw(st.binary(max_size=2000))
    data = draw(audio_data)
    header: dict = {"type": draw(st.sampled_from(TYPES) | st.text(max_size=10))}
    if draw(st.booleans()):
        header["data"] = data
        extra = b""
    else:
        extra = json.dumps(data).encode()
        header["data_length"] = len(extra)
    header["payload_length"] = len(payload)
    lie = draw(st.integers(0, 4))
    if lie == 1:  # declared lengths that do not match what follows
        header["payload_length"] = draw(st.integers(-5, 5000))
    elif lie == 2:
        header["data_length"] = draw(st.integers(-5, 5000) | st.just("ten"))
    elif lie == 3:  # huge declared length
        header["payload_length"] = draw(st.sampled_from([2**31, 2**40, 10**30]))
    elif lie == 4:  # payload with no header length at all
        del header["payload_length"]
    return json.dumps(header).encode() + b"\n" + extra + payload


def _exchange(srv: ServerProcess, blob: bytes, timeout: float = 10) -> list[dict]:
    """Send ``blob``, half-close, read every event until the server hangs up (or fail)."""
    with socket.create_connection(("127.0.0.1", srv.wyoming_port), timeout=timeout) as sock:
        try:
            sock.sendall(blob)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server already hung up on a fatal framing error
        received = b""
        try:
            while chunk := sock.recv(65536):  # a hang would raise socket.timeout here
                received += chunk
        except ConnectionResetError:
            pass
    events = []
    for line in received.split(b"\n"):
        if line.startswith(b"{"):
            with contextlib.suppress(ValueError):  # else a payload or data block
                events.append(json.loads(line))
    return events


@FUZZ
@given(st.lists(wyoming_event(), min_size=1, max_size=6))
def test_wyoming_fuzz(fuzz_server: ServerProcess, events: list[bytes]) -> None:
    replies = _exchange(fuzz_server, b"".join(events))
    for reply in replies:
        if reply.get("type") == "error":
            assert reply.get("data", {}).get("code") != "internal-error", reply


def test_wyoming_audio_chunk_before_start_and_good_request_after(fuzz_server) -> None:
    chunk = {"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}}
    pcm = bytes(3200)
    blob = (json.dumps({**chunk, "payload_length": len(pcm)}) + "\n").encode() + pcm
    blob += b'{"type": "audio-stop"}\n'
    with socket.create_connection(("127.0.0.1", fuzz_server.wyoming_port), timeout=30) as sock:
        sock.sendall(blob)  # no half-close: the server takes end-of-stream as a hang-up
        received = b""
        while b'"transcript"' not in received and (chunk := sock.recv(65536)):
            received += chunk
    assert b'"transcript"' in received
    # After all the fuzzing, a good request still works.
    status, body, _ = post_audio(fuzz_server.url, clip(SHORT).read_bytes())
    assert status == 200 and short_ok(body["text"])


# -- multipart --------------------------------------------------------------------------------

FIELDS = ["model", "file", "response_format", "language", "temperature", "stream", "prompt", "x"]


@st.composite
def multipart_body(draw: st.DrawFn) -> tuple[bytes, str]:
    boundary = draw(st.sampled_from(["b0und", "x" * 70, "--", "a b"]))
    good_audio = Path(clip(SHORT)).read_bytes()
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from(FIELDS) | st.text(max_size=10))
        value = draw(
            st.binary(max_size=300)
            | st.sampled_from([b"whisper-1", b"json", b"verbose_json", b"en", b"0.5", b"true"])
            | st.just(good_audio)
        )
        filename = draw(st.sampled_from(["", '; filename="a.wav"', '; filename="\x00"']))
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n\r\n'
            .encode(errors="replace") + value + b"\r\n"
        )  # fmt: skip
    body = b"".join(parts) + draw(st.sampled_from([f"--{boundary}--\r\n".encode(), b""]))
    if draw(st.booleans()) and body:  # mutate a few bytes
        data = bytearray(body)
        for _ in range(draw(st.integers(1, 5))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        body = bytes(data)
    ctype = draw(
        st.sampled_from(
            [
                f"multipart/form-data; boundary={boundary}",
                "multipart/form-data",
                "application/json",
                f"multipart/form-data; boundary={boundary}x",
            ]
        )
    )
    return body, ctype


@FUZZ
@given(multipart_body())
def test_multipart_fuzz(fuzz_server: ServerProcess, case: tuple[bytes, str]) -> None:
    body, ctype = case
    conn = http.client.HTTPConnection("127.0.0.1", fuzz_server.port, timeout=60)
    try:
        conn.request("POST", "/v1/audio/transcriptions", body=body, headers={"Content-Type": ctype})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    assert resp.status < 500, (resp.status, data[:500])
    if resp.status >= 400:
        assert set(json.loads(data)["error"]) == {"message", "type", "param", "code"}
