"""Any audio in, 16 kHz mono float32 out: raw PCM of any rate/width/channels, or any container.

Containers are decoded with PyAV (FFmpeg's libraries, already a faster-whisper dependency), so no
ffmpeg process is spawned and nothing is left behind. All functions here block: the engine calls
them from its worker pool.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import numpy as np

from .backends.base import SAMPLE_RATE
from .errors import BadAudio

_PCM_DTYPES = {1: np.uint8, 2: np.int16, 4: np.int32}


def pcm_to_float(data: bytes, width: int, channels: int) -> np.ndarray:
    """Little-endian PCM bytes (whole frames) -> mono float32 in [-1, 1]."""
    if width == 3:
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)
        wide = (
            raw[:, 0].astype(np.int32)
            | (raw[:, 1].astype(np.int32) << 8)
            | (raw[:, 2].astype(np.int32) << 16)
        )
        samples = ((wide << 8) >> 8).astype(np.float32) / float(1 << 23)
    else:
        dtype = _PCM_DTYPES[width]
        ints = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))
        if width == 1:
            samples = (ints.astype(np.float32) - 128.0) / 128.0
        else:
            samples = ints.astype(np.float32) / float(1 << (8 * width - 1))
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(samples, dtype=np.float32)


class PcmConverter:
    """Streams raw PCM of one format into 16 kHz mono float32, chunk by chunk.

    Keeps a partial frame between chunks and the resampler's state, so chunk boundaries change
    nothing in the output. Resampled audio is rounded to 16 bits as ``decode_file`` rounds it:
    a stream and an upload of the same PCM give the same samples, hence the same transcript
    (a difference of 1e-5 is enough to change a word of tiny.en's).
    """

    def __init__(self, rate: int, width: int, channels: int) -> None:
        if not 1000 <= rate <= 384000:
            raise BadAudio(f"unsupported sample rate {rate}")
        if width not in (1, 2, 3, 4):
            raise BadAudio(f"unsupported sample width {width} (use 1, 2, 3 or 4 bytes)")
        if not 1 <= channels <= 32:
            raise BadAudio(f"unsupported channel count {channels}")
        self.rate, self.width, self.channels = rate, width, channels
        self._frame = width * channels
        self._rest = b""
        self._resampler = None
        if rate != SAMPLE_RATE:
            self._resampler = _resampler()
        self._pts = 0

    def feed(self, data: bytes) -> np.ndarray:
        data = self._rest + data
        usable = len(data) - len(data) % self._frame
        self._rest = data[usable:]
        if not usable:
            return np.zeros(0, dtype=np.float32)
        return self._resample(pcm_to_float(data[:usable], self.width, self.channels))

    def flush(self) -> np.ndarray:
        """The resampler's tail; call once at the end of the stream."""
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        return _samples(self._resampler.resample(None))

    def _resample(self, mono: np.ndarray) -> np.ndarray:
        if self._resampler is None:
            return mono
        import av

        frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._pts
        self._pts += mono.shape[0]
        return _samples(self._resampler.resample(frame))


def _g711_table(law: str) -> np.ndarray:
    """The 256 16-bit samples a G.711 byte stands for (ITU-T G.711, as telephony decodes it)."""
    codes = np.arange(256, dtype=np.int32)
    if law == "ulaw":
        u = ~codes & 0xFF
        magnitude = (((u & 0x0F) << 3) + 0x84 << ((u >> 4) & 7)) - 0x84
        return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)
    a = codes ^ 0x55
    exponent, mantissa = (a >> 4) & 7, a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


G711 = {"ulaw": _g711_table("ulaw"), "alaw": _g711_table("alaw")}


class G711Converter(PcmConverter):
    """G.711 μ-law or A-law (8 kHz, a byte per sample: telephony) into 16 kHz mono float32."""

    def __init__(self, law: str) -> None:
        super().__init__(8000, 2, 1)
        self._table = G711[law]

    def feed(self, data: bytes) -> np.ndarray:
        return super().feed(self._table[np.frombuffer(data, dtype=np.uint8)].tobytes())


def _resampler() -> Any:
    """To 16 kHz mono 16-bit, as faster-whisper's ``decode_audio`` resamples: streams and
    uploads share it, so the same PCM gives the same samples on every door."""
    import av

    return av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)


def _samples(frames: list) -> np.ndarray:
    """The resampler's 16-bit frames as float32 in [-1, 1)."""
    if not frames:
        return np.zeros(0, dtype=np.float32)
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32)
    return pcm / 32768.0


def decode_file(path: str) -> np.ndarray:
    """Decode any container FFmpeg reads into 16 kHz mono float32; BadAudio if it cannot.

    The same samples as faster-whisper's ``decode_audio`` (16-bit mono at 16 kHz, then / 32768;
    undecodable frames skipped), without its full garbage collection after every file: that
    takes 65-70 ms in this server's process, longer than decoding a voice command. What the
    resampler leaves in reference cycles is young; collecting the young generations frees it.
    """
    import av

    frames: list[Any] = []
    try:
        with av.open(path, mode="r", metadata_errors="ignore") as container:
            resampler = _resampler()
            for frame in [*_decodable(container.decode(audio=0)), None]:
                if frame is not None:
                    frame.pts = None  # no timestamp checks: some files jump
                frames += resampler.resample(frame)
            del resampler
        samples = _samples(frames)
    except (av.error.FFmpegError, ValueError, IndexError, StopIteration, OSError) as err:
        raise BadAudio(f"could not decode the audio file: {_describe(err)}", param="file") from err
    finally:
        del frames
        gc.collect(1)
    if not samples.size:
        raise BadAudio("the audio file holds no audio samples", param="file")
    return samples


def _decodable(frames: Iterator[Any]) -> Iterator[Any]:
    """The frames FFmpeg can decode: a damaged one is skipped, as faster-whisper does."""
    import av

    while True:
        try:
            yield next(frames)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue


def _describe(err: Exception) -> str:
    """FFmpeg's reason, without its errno or the server-side file name."""
    import av

    if isinstance(err, av.error.FFmpegError) and err.strerror:
        return str(err.strerror)
    text = str(err).strip()
    return text.splitlines()[0] if text else err.__class__.__name__
