"""Confirmed words: what two consecutive decodes of a growing utterance agree on (pure).

While speech arrives, the stream decodes the open *window* of the utterance again and again, each
time with a little more audio. Whisper's last words are guesses (the speaker has not finished
them), its earlier words settle. LocalAgreement-2 (Machacek, Dabre and Bojar, "Turning Whisper
into Real-Time Transcription System", 2023, as in whisper_streaming) confirms the longest prefix
that a decode shares with the one before it, after the words already confirmed. Confirmed words
are never taken back; the final decode remains the authoritative transcript (``rest`` aligns it
with what was confirmed).

Words are compared by their letters and digits only, case-folded ("Three." equals "three":
``words.key``), and kept as first decoded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .words import key

ALIGN_SLACK = 2  # how far a rewritten hypothesis may drift from the confirmed word count
_WORD = re.compile(r"\S+")


def common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    """How many leading words ``a`` and ``b`` share (compared by ``key``)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if key(x) != key(y):
            break
        n += 1
    return n


def align(hypothesis: Sequence[str], confirmed: Sequence[str]) -> int | None:
    """Where the words after ``confirmed`` start in ``hypothesis`` (a decode of the same audio);
    None when the hypothesis rewrote the confirmed words beyond a changed last word.

    Usually the hypothesis repeats the confirmed words first. Whisper may still respell the
    last of them ("do." for "do"): the hypothesis is then cut after the word nearest the
    confirmed count that equals the last confirmed word.
    """
    count = len(confirmed)
    if not count or common_prefix(hypothesis, confirmed) == count:
        return count
    last = key(confirmed[-1])
    near = range(max(1, count - ALIGN_SLACK), min(len(hypothesis), count + ALIGN_SLACK) + 1)
    matches = [i for i in near if key(hypothesis[i - 1]) == last]
    if matches:
        return min(matches, key=lambda i: abs(i - count))
    return None


@dataclass
class Agreement:
    """LocalAgreement-2 over the hypotheses of one utterance.

    ``confirmed`` holds every confirmed word; the last ``held`` of them lie in the audio the
    window still covers (a decode of the window repeats them); ``pending`` is the previous
    hypothesis after the confirmed words, waiting for the next one to agree; ``covered`` is how
    many leading words of the last hypothesis are confirmed (None when it disagreed).
    """

    confirmed: list[str] = field(default_factory=list)
    held: int = 0
    pending: list[str] = field(default_factory=list)
    covered: int | None = None

    def update(
        self, hypothesis: Sequence[str], *, whole: bool = False, paused: bool = False
    ) -> list[str]:
        """The words this hypothesis confirms (appended to ``confirmed``).

        ``hypothesis`` decodes the window; with ``whole`` it decodes the utterance from its
        start (an early decode), so it repeats every confirmed word, not only the held ones.
        With ``paused`` it decodes audio that ends in a pause of the speaker's (an early
        decode starts after one): its words are finished, so it confirms them all, as a second
        hypothesis would (a short command's live decodes often disagree on its first words
        until it ends: tiny.en heard "at the top." and "hit the taren wick block" before the
        early decode's "Shut the tauron wick blind.").
        """
        start = align(hypothesis, self.confirmed if whole else self.window)
        self.covered = start
        if start is None:
            return []  # it disagrees with what was confirmed: wait for one that does not
        fresh = list(hypothesis[start:])
        n = len(fresh) if paused else common_prefix(fresh, self.pending)
        new, self.pending = fresh[:n], fresh[n:]
        self.confirmed.extend(new)
        self.held += len(new)
        self.covered = start + n
        return new

    @property
    def before(self) -> list[str]:
        """The confirmed words before the window's audio (a live decode's context)."""
        return self.confirmed[: len(self.confirmed) - self.held]

    @property
    def window(self) -> list[str]:
        """The confirmed words inside the window's audio."""
        return self.confirmed[len(self.confirmed) - self.held :] if self.held else []

    def forget(self, count: int) -> None:
        """The window now starts after its first ``count`` confirmed words."""
        self.held = max(0, self.held - count)

    @property
    def text(self) -> str:
        return " ".join(self.confirmed)


def piece(words: Sequence[str], *, first: bool) -> str:
    """Words as a piece of text that appends to what was sent before."""
    text = " ".join(words)
    return text if first or not text else " " + text


def rest(final: str, confirmed: Sequence[str]) -> str:
    """The final transcript after the words already confirmed, as a piece to append.

    The final is authoritative: confirmed words it spells differently stay as they were sent,
    and the rest is the final's own text after the aligned point.
    """
    final = final.strip()
    if not confirmed:
        return final
    spans = [m.span() for m in _WORD.finditer(final)]
    cut = align([final[a:b] for a, b in spans], confirmed)
    if cut is None:  # the final rewrote confirmed words: what follows as many words as were sent
        cut = len(confirmed)
    if cut >= len(spans):
        return ""
    return " " + final[spans[cut][0] :]
