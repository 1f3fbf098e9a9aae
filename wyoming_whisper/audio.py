"""Any audio in, 16 kHz mono float32 out: raw PCM of any rate/width/channels, or an uploaded file.

Files are decoded with PyAV (FFmpeg's libraries, already a faster-whisper dependency), so no
ffmpeg process is spawned and nothing is left behind. FFmpeg reads far more than audio files
(playlists and concat scripts that open other files, devices, image sequences): only the
containers and codecs people upload are opened, the spooled file alone. What audio will cost is
known before it is paid: a declared rate, channel count or length past the limits is refused
before converting, and decoded samples are counted as they are produced. All functions here
block: the engine calls them from its pools.
"""

from __future__ import annotations

import errno
import gc
import itertools
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from .backends.base import SAMPLE_RATE
from .errors import BadAudio, TooLarge

_PCM_DTYPES = {1: np.uint8, 2: np.int16, 4: np.int32}

# Every stream and file: below 1 kHz one input sample becomes more than 16 at 16 kHz, so a
# small input could stand for hours; past 384 kHz and 32 channels is no microphone.
MIN_RATE, MAX_RATE = 1000, 384000
MAX_CHANNELS = 32

# The containers an upload may be, as FFmpeg's demuxers name them ("mov" is mov,mp4,m4a,3gp,...,
# "matroska" is matroska,webm). None opens another file: no hls, concat, image2, mpegts, lavfi...
UPLOAD_FORMATS = ("wav", "w64", "flac", "mp3", "ogg", "matroska", "mov", "aac", "caf", "aiff")
UPLOAD_FORMATS_TEXT = (
    "WAV, FLAC, MP3, Ogg (Opus, Vorbis, FLAC), WebM/Matroska, MP4/M4A/MOV, AAC (ADTS), W64, CAF "
    "or AIFF"
)
# ... and the audio codecs in them, as FFmpeg's decoders name them.
UPLOAD_CODECS = frozenset(
    {
        *(f"pcm_{kind}" for kind in ("u8", "s8", "alaw", "mulaw")),
        *(
            f"pcm_{kind}{end}"
            for kind in ("s16", "s24", "s32", "f32", "f64")
            for end in ("le", "be")
        ),
        "flac",
        "alac",
        "mp3",
        "mp3float",
        "vorbis",
        "libvorbis",
        "opus",
        "libopus",
        "aac",
        "aac_fixed",
    }
)
UPLOAD_CODECS_TEXT = "PCM, G.711, FLAC, ALAC, MP3, Vorbis, Opus or AAC"
# FFmpeg's own checks, applied while it probes the file: the spooled file alone, nothing nested.
_OPEN_OPTIONS = {
    "format_whitelist": ",".join(UPLOAD_FORMATS),
    "protocol_whitelist": "file",
    "codec_whitelist": ",".join(sorted(UPLOAD_CODECS)),
}


def check_format(rate: int, channels: int, param: str | None = None) -> None:
    """BadAudio for a rate or channel count this server does not convert: one rule for the
    streams' declared PCM and the files' declared (and decoded) audio."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadAudio(f"unsupported sample rate {rate}", param=param)
    if not 1 <= channels <= MAX_CHANNELS:
        raise BadAudio(f"unsupported channel count {channels}", param=param)


def too_long(samples: int, max_samples: int) -> TooLarge:
    """The refusal of audio past ``--max-audio-seconds``, as files and the engine say it."""
    return TooLarge(
        f"audio is {samples / SAMPLE_RATE:.0f} s long; this server accepts at most "
        f"{max_samples / SAMPLE_RATE:.0f} s",
        param="file",
    )


def resampled_length(frames: int, rate: int) -> int:
    """How many 16 kHz samples ``frames`` at ``rate`` become (rounded up): the cost, before it
    is paid."""
    return -(-frames * SAMPLE_RATE // rate)


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
    nothing in the output. Resampled audio is rounded to 16 bits as ``read_file`` rounds it:
    a stream and an upload of the same PCM give the same samples, hence the same transcript
    (a difference of 1e-5 is enough to change a word of tiny.en's).
    """

    def __init__(self, rate: int, width: int, channels: int) -> None:
        check_format(rate, channels)
        if width not in (1, 2, 3, 4):
            raise BadAudio(f"unsupported sample width {width} (use 1, 2, 3 or 4 bytes)")
        self.rate, self.width, self.channels = rate, width, channels
        self._frame = width * channels
        self._rest = b""
        self._resampler = None
        if rate != SAMPLE_RATE:
            self._resampler = _resampler()
        self._pts = 0

    def output_length(self, size: int) -> int:
        """How many 16 kHz samples ``feed`` of ``size`` more bytes gives (give or take the
        resampler's few samples of delay), known before converting any."""
        return resampled_length((len(self._rest) + size) // self._frame, self.rate)

    def slice_bytes(self, samples: int) -> int:
        """Input bytes (whole frames) that give about ``samples`` at 16 kHz: the size of the
        pieces a large chunk is converted in, so its conversion's scratch memory stays small."""
        return max(1, samples * self.rate // SAMPLE_RATE) * self._frame

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

    def output_length(self, size: int) -> int:
        return super().output_length(2 * size)  # a byte per sample, 16-bit once decoded

    def slice_bytes(self, samples: int) -> int:
        return super().slice_bytes(samples) // 2

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
    return _to_float(np.concatenate([f.to_ndarray().reshape(-1) for f in frames]))


def _to_float(pcm: np.ndarray) -> np.ndarray:
    """16-bit samples as float32 in [-1, 1), scaled in place (one float copy, not two)."""
    samples = pcm.astype(np.float32)
    samples /= 32768.0
    return samples


def read_file(path: str, max_samples: int | None = None) -> np.ndarray:
    """Read an uploaded file's audio as 16 kHz mono float32 (its codec decoded, resampled: not a
    *decode*, which in this project is a model's run); BadAudio if it is not one this server
    accepts or cannot be decoded, TooLarge as soon as it is known to pass ``max_samples``.

    The cost is known before it is paid: the declared rate, channels and length are checked
    when the file is opened, then each frame's resampled length before it is resampled (at
    most 16 times its samples, by the rate floor), so no file decodes past the limit whatever
    its header says. A file that declares no length (a browser's WebM, FLAC written as a
    stream) is decoded twice, counted first keeping nothing: hours of compressed silence in a
    few KB cost no memory. The same samples as faster-whisper's ``decode_audio`` (16-bit mono
    at 16 kHz, then / 32768; undecodable frames skipped), without its full garbage collection
    after every file: that takes 65-70 ms in this server's process, longer than decoding a
    voice command. What the resampler leaves in reference cycles is young; collecting the
    young generations frees it.
    """
    import av

    limit = max_samples if max_samples is not None else sys.maxsize
    pieces: list[np.ndarray] = []  # the resampler's 16-bit output, half the size of float32
    try:
        with _open(path) as container:
            stream = _audio_stream(container)
            count_first = container.duration is None and isinstance(path, str)
            if count_first:
                for _ in _checked(container, stream, limit):
                    pass
            else:
                pieces = _resampled(_checked(container, stream, limit))
        if count_first:
            with _open(path) as container:
                pieces = _resampled(_checked(container, _audio_stream(container), limit))
        samples = _to_float(np.concatenate(pieces)) if pieces else np.zeros(0, np.float32)
    except (av.error.FFmpegError, ValueError, IndexError, StopIteration, OSError) as err:
        raise BadAudio(f"could not decode the audio file: {_describe(err)}", param="file") from err
    finally:
        del pieces
        gc.collect(1)
    if not samples.size:
        raise BadAudio("the audio file holds no audio samples", param="file")
    return samples


def _checked(container: Any, stream: Any, limit: int) -> Iterator[Any]:
    """The stream's decodable frames, each checked before it is paid for: its rate and
    channels, and the 16 kHz samples so far with it, against ``limit``."""
    import av

    check_format(stream.rate, stream.channels, param="file")
    declared = (container.duration or 0) * SAMPLE_RATE // av.time_base
    if declared > limit:
        raise too_long(declared, limit)
    counted = 0
    for frame in _decodable(container.decode(stream)):
        check_format(frame.sample_rate, frame.layout.nb_channels, param="file")
        counted += resampled_length(frame.samples, frame.sample_rate)
        if counted > limit:
            raise too_long(counted, limit)
        frame.pts = None  # no timestamp checks: some files jump
        yield frame


def _resampled(frames: Iterator[Any]) -> list[np.ndarray]:
    """The frames at 16 kHz mono, 16-bit, as the resampler gives them."""
    resampler = _resampler()
    pieces = []
    for frame in itertools.chain(frames, [None]):
        pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
    return pieces


def _open(path: str) -> Any:
    """The spooled upload opened as one of the accepted containers, whatever its content claims:
    FFmpeg probes it, and refuses a format not on the list before reading its header."""
    import av

    try:
        return av.open(path, mode="r", metadata_errors="ignore", container_options=_OPEN_OPTIONS)
    except av.error.FFmpegError as err:
        if err.errno != errno.EINVAL:  # EINVAL: the probed format is not on the list
            raise
        raise BadAudio(
            f"the file's format is not accepted; send {UPLOAD_FORMATS_TEXT}", param="file"
        ) from None


def _audio_stream(container: Any) -> Any:
    """The first audio stream, if its codec is one people upload audio in."""
    if not container.streams.audio:
        raise BadAudio("the audio file holds no audio stream", param="file")
    stream = container.streams.audio[0]
    codec = stream.codec_context  # None when FFmpeg has no decoder for what the file declares
    if codec is None or codec.name not in UPLOAD_CODECS:
        named = f" ({codec.name})" if codec is not None else ""
        raise BadAudio(
            f"the file's audio codec{named} is not accepted; send {UPLOAD_CODECS_TEXT}",
            param="file",
        )
    return stream


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
