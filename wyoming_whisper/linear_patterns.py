"""hassil's sentence patterns matched in linear time (RE2), the answers unchanged.

Before its string matcher, hassil keeps only the sentence templates whose regular expression
matches the text (``Sentence.pattern``, compiled by ``Sentence.compile`` with Python's ``re``).
Some of Home Assistant's English templates ("<what_is_the_class_of_name>") compile to patterns
with several ``(.+)`` that backtrack: 9-13 ms each on a text they do not match, ~30 of them per
intent, so one question that is no command cost 100-400 ms of matching. RE2 gives the same
match or no match without backtracking. ``linear`` compiles each template once as hassil would
(same expansion rules), then puts the RE2 pattern in its place; a pattern RE2 does not take
keeps Python's.

This leans on how hassil uses ``Sentence.pattern`` (its ``.match(text)`` tested for None, in
``recognize_all``'s filter): checked on the versions in ``CHECKED``; outside them nothing is
swapped and the log says so.
"""

from __future__ import annotations

import logging
import re
from importlib.metadata import version

from hassil import Intents

_LOGGER = logging.getLogger(__name__)

CHECKED = ((2, 2), (3, 0))  # hassil releases from the first, before the second
_FLAGS = re.IGNORECASE | re.UNICODE  # what hassil compiles its patterns with


def checked(release: str) -> bool:
    """Whether a hassil release is one this module was checked against."""
    parts = tuple(int(p) for p in re.findall(r"\d+", release)[:2])
    return CHECKED[0] <= parts < CHECKED[1]


def linear(intents: Intents) -> int:
    """Give every sentence of ``intents`` an RE2 pattern where RE2 takes it; how many got one.

    Blocking (a second or so for a language's sentences): call it where they are loaded.
    """
    release = version("hassil")
    if not checked(release):
        _LOGGER.warning(
            "hassil %s is not a release this server was checked with: its patterns keep re", release
        )
        return 0
    import re2

    swapped = 0
    for intent in intents.intents.values():
        for data in intent.data:
            rules = {**intents.expansion_rules, **data.expansion_rules}  # (as recognize_all)
            for sentence in data.sentences:
                sentence.compile(rules)
                pattern = sentence.pattern
                if not isinstance(pattern, re.Pattern) or pattern.flags != _FLAGS:
                    continue
                try:
                    sentence.pattern = re2.compile("(?i)" + pattern.pattern)
                except re2.error:
                    continue
                swapped += 1
    return swapped
