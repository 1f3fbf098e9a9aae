"""Write test audio in other containers, rates and channel layouts with PyAV (FFmpeg)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def read_mono(path: Path, rate: int = 16000) -> np.ndarray:
    """Any audio file -> mono float32 at ``rate``."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32)


def encode(
    samples: np.ndarray,
    path: Path,
    *,
    codec: str,
    rate: int,
    layout: str = "mono",
    container: str | None = None,
) -> Path:
    """16 kHz mono float32 -> ``path`` with ``codec`` at ``rate`` Hz in ``layout``."""
    channels = 2 if layout == "stereo" else 1
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout  # type: ignore[union-attr]
        fmt = stream.codec_context.codec.audio_formats[0].name  # type: ignore[union-attr]
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        # Packed float: channels interleaved in one plane (both channels carry the speech).
        data = np.repeat(samples, channels).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="flt", layout=layout)
        frame.sample_rate = 16000
        frames = resampler.resample(frame) + resampler.resample(None)
        for f in frames:
            for packet in stream.encode(f):  # type: ignore[union-attr]
                out.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            out.mux(packet)
    return path
