"""Words of a transcript as they are compared: letters and digits, case-folded (pure).

Two decodes of the same speech may differ in case and punctuation ("Three." and "three"); what
agrees (live text, ``agreement``) and what repeats (a looping decoder, ``encoder_window``) is
judged on the words alone.
"""

from __future__ import annotations


def key(word: str) -> str:
    """A word as compared: letters and digits, case-folded (punctuation and case may change)."""
    return "".join(ch for ch in word.casefold() if ch.isalnum())


def split(text: str) -> list[str]:
    """A transcript's words as written."""
    return text.split()


def keys(text: str) -> list[str]:
    """A transcript's words as compared (a word of punctuation only is no word)."""
    return [k for k in map(key, split(text)) if k]
