"""A final's segments as Wyoming transcript-chunks whose concatenation is the transcript (pure)."""

from __future__ import annotations


class ChunkText:
    """Cuts segment texts into transcript chunks whose concatenation is the stripped transcript.

    The transcript is ``"".join(segment texts).strip()``: leading whitespace of the first piece is
    dropped and trailing whitespace is held back until more text follows it.
    """

    def __init__(self) -> None:
        self._held = ""
        self._started = False

    def feed(self, text: str) -> str:
        if not self._started:
            text = text.lstrip()
            if not text:
                return ""
            self._started = True
        body = text.rstrip()
        if not body:
            self._held += text
            return ""
        piece = self._held + body
        self._held = text[len(body) :]
        return piece
