"""Fake ``mlx_whisper.tokenizer``: Whisper's text tokens, from the fake's CPU model."""

from __future__ import annotations

from typing import Any

from . import transcribe


class Tokenizer:
    def __init__(self, hf_tokenizer: Any) -> None:
        self._hf = hf_tokenizer

    def encode(self, text: str, **kwargs: Any) -> list[int]:
        return list(self._hf.encode(text, add_special_tokens=False).ids)


def get_tokenizer(
    multilingual: bool,
    *,
    num_languages: int = 99,
    language: str | None = None,
    task: str | None = None,
) -> Tokenizer:
    """The last loaded model's tokenizer (the real one needs no model: its vocabularies ship
    with mlx-whisper; the fake's come with the weights)."""
    loaded = transcribe.LAST
    assert loaded is not None and loaded.is_multilingual == multilingual
    assert num_languages == loaded.num_languages
    return Tokenizer(loaded.cpu_model.hf_tokenizer)
