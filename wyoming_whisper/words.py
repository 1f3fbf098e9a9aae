"""Words of a transcript as they are compared: letters and digits, case-folded (pure).

Two decodes of the same speech may differ in case and punctuation ("Three." and "three"); what
agrees (live text, ``agreement``) and what repeats (a looping decoder, ``encoder_window``) is
judged on the words alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from difflib import SequenceMatcher

# Two runs of words say the same thing when their letters match this closely: a respelt word
# ("switch"/"swich" 0.99, "turn"/"tarn" 0.96) or a name split differently ("Vasselhoff"/"Vassel
# Hoff" 0.99) stays above it, another command ("turn on the kitchen light"/"... fan" 0.83,
# "... light and"/"... fan" 0.85) below.
ALIKE = 0.9


def key(word: str) -> str:
    """A word as compared: letters and digits, case-folded (punctuation and case may change)."""
    return "".join(ch for ch in word.casefold() if ch.isalnum())


def split(text: str) -> list[str]:
    """A transcript's words as written."""
    return text.split()


def keys(text: str) -> list[str]:
    """A transcript's words as compared (a word of punctuation only is no word)."""
    return [k for k in map(key, split(text)) if k]


def alike(a: Sequence[str], b: Sequence[str], similarity: float = ALIKE) -> bool:
    """Whether two runs of compared words (``keys``) say the same thing, allowing small
    differences of spelling: how closely their letters match (difflib's ratio)."""
    one, two = " ".join(a), " ".join(b)
    matcher = SequenceMatcher(None, one, two, autojunk=False)
    return matcher.real_quick_ratio() >= similarity and matcher.ratio() >= similarity
