"""HTTP and WebSocket client helpers for the tests and benches: multipart bodies, streaming,
long audio, process resources, metrics."""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.request
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np
import psutil
from prometheus_client.parser import text_string_to_metric_families

from wyoming_whisper.audio import G711

from .audio_files import read_mono
from .harness import load_manifest, words

SHORT = "lhotse/LJ002-0020.wav"  # 1.5 s: "in eighteen thirteen"
SHORT_READINGS = (["in", "eighteen", "thirteen"], ["in", "1813"])  # both seen from tiny.en
COUNT = "speech_recognition/english.wav"  # 2.7 s: "one two three"
WS_PATH = "/v1/audio/transcriptions/stream"


def short_ok(text: str) -> bool:
    """Whether ``text`` is a right transcript of SHORT."""
    return words(text) in SHORT_READINGS


def write_wav(samples: np.ndarray, path: Path) -> Path:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return path


def wav_bytes(pcm: bytes, rate: int) -> bytes:
    """16-bit mono PCM at ``rate`` as a WAV file's bytes."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


def long_wav(seconds: float, path: Path) -> Path:
    """The English clips of the manifest one after another (half a second apart), repeated to
    ``seconds``: varied speech, so every 30 s window decodes in about the same short time."""
    pieces = []
    for item in load_manifest():
        if item.language == "en" and item.duration < 20 and item.path.exists():
            pieces += [read_mono(item.path), np.zeros(8000, np.float32)]
    piece = np.concatenate(pieces)
    reps = int(seconds * 16000 / piece.shape[0]) + 1
    return write_wav(np.tile(piece, reps)[: int(seconds * 16000)], path)


def form_body(parts: list[tuple[str, str | bytes, str | None]]) -> tuple[bytes, str]:
    """(name, value, filename) parts -> a multipart/form-data body and its Content-Type."""
    boundary = uuid.uuid4().hex
    body = bytearray()
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        data = value.encode() if isinstance(value, str) else value
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            body += b"Content-Type: application/octet-stream\r\n"
        body += b"\r\n" + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return bytes(body), f"multipart/form-data; boundary={boundary}"


def multipart(fields: dict[str, str], audio: bytes, filename: str = "a.wav") -> tuple[bytes, str]:
    """Form ``fields`` first (as SDKs send them), then the audio file."""
    return form_body([*((k, v, None) for k, v in fields.items()), ("file", audio, filename)])


async def ws_transcribe(
    session: aiohttp.ClientSession, url: str, pcm: bytes, chunk: int = 32000
) -> dict:
    """Stream PCM over the WebSocket; the final message, or the first error."""
    async with session.ws_connect(url.replace("http", "ws") + WS_PATH) as ws:
        for i in range(0, len(pcm), chunk):
            await ws.send_bytes(pcm[i : i + chunk])
        await ws.send_bytes(b"EOS")
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if data["type"] in ("final", "error"):
                    return dict(data)
    raise ConnectionError("WebSocket closed without a final or error message")


def post_audio(
    url: str, audio: bytes, fields: dict[str, str] | None = None, timeout: float = 120
) -> tuple[int, dict, dict[str, str]]:
    """POST a transcription; (status, JSON body, headers), errors included."""
    body, ctype = multipart(fields or {"model": "whisper-1"}, audio)
    req = urllib.request.Request(
        url + "/v1/audio/transcriptions", data=body, headers={"Content-Type": ctype}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), dict(err.headers)


def post_json(url: str, data: dict, timeout: float = 30) -> dict:
    """POST a JSON body; the JSON answer (raises on an error status)."""
    req = urllib.request.Request(
        url, data=json.dumps(data).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return dict(json.loads(resp.read()))


def metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return parse_metrics(text)


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of a /metrics text as {(name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@dataclass
class Resources:
    """What a server process holds: RSS, descriptors, threads, children, temp files."""

    rss_mb: float
    fds: int
    threads: int
    children: int
    temp_files: int

    @classmethod
    def of(cls, pid: int, tmpdir: Path | None = None) -> Resources:
        proc = psutil.Process(pid)
        temp = len([n for n in os.listdir(tmpdir) if n.startswith("whisper-")]) if tmpdir else 0
        return cls(
            rss_mb=proc.memory_info().rss / 1e6,
            fds=proc.num_fds(),
            threads=proc.num_threads(),
            children=len(proc.children(recursive=True)),
            temp_files=temp,
        )


# A Realtime transcription session as the SDK's client sets one up (tests/test_realtime.py and
# bench/streaming.py): 24 kHz PCM, English, the server's VAD ending each turn after 500 ms.
REALTIME_SESSION = {
    "type": "transcription",
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": {"model": "whisper-1", "language": "en"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
        }
    },
}


def ulaw(pcm16: bytes) -> bytes:
    """G.711 μ-law bytes whose decoding is nearest each 16-bit sample (the server's table,
    inverted): what a telephony client sends."""
    table = G711["ulaw"].astype(np.int32)
    order = np.argsort(table)
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.int32)
    pos = np.clip(np.searchsorted(table[order], samples), 1, 255)
    lower, upper = order[pos - 1], order[pos]
    nearer = np.where(samples - table[lower] <= table[upper] - samples, lower, upper)
    return nearer.astype(np.uint8).tobytes()
