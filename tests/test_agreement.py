"""LocalAgreement-2 (agreement.py): what consecutive decodes agree on, the final's rest."""

from __future__ import annotations

from wyoming_whisper.agreement import Agreement, align, common_prefix, piece, rest
from wyoming_whisper.words import alike, key, keys


def words(text: str) -> list[str]:
    return text.split()


def test_alike_allows_a_respelt_word_but_not_another_command() -> None:
    assert alike(keys("Switch off the porch light"), keys("Swich off the porch light."))
    assert alike(keys("the Vasselhoff porch light"), keys("the Vassel Hoff porch light"))
    assert not alike(keys("turn on the kitchen light"), keys("turn on the kitchen fan"))
    assert not alike(keys("ask not what your country can do"), keys("ask what you can do"))


def test_key_ignores_case_and_punctuation() -> None:
    assert key("Three.") == key("three") == "three"
    assert key("1813,") == "1813" and key("...") == ""
    assert common_prefix(words("And so, my"), words("and so my fellow")) == 3


def test_two_decodes_confirm_their_common_prefix_once() -> None:
    a = Agreement()
    assert a.update(words("And so my")) == []  # nothing to agree with yet
    assert a.update(words("And so my fellow")) == words("And so my")
    assert a.update(words("And so my fellow Americans")) == ["fellow"]
    assert a.update(words("And so my fellow Americans ask")) == ["Americans"]
    assert a.text == "And so my fellow Americans" and a.pending == ["ask"]


def test_a_guess_that_changes_is_not_confirmed() -> None:
    a = Agreement()
    a.update(words("n."))
    assert a.update(words("And so")) == []  # "n." and "And" disagree
    assert a.update(words("And so my")) == words("And so")


def test_confirmed_words_are_never_taken_back() -> None:
    a = Agreement()
    a.update(words("ask not what"))
    a.update(words("ask not what your"))
    # Whisper rewrites the confirmed words: nothing of that hypothesis is confirmed...
    assert a.update(words("ask knot which your country")) == []
    assert a.text == "ask not what"
    # ...and the next hypothesis that keeps the confirmed words carries on.
    assert a.update(words("ask not what your country can")) == ["your"]


def test_a_respelled_last_word_still_aligns() -> None:
    assert align(words("can do. For you"), words("can do")) == 2
    assert align(words("am I fellow"), words("And so my")) is None
    assert align(words("asked knot what your"), words("ask not what")) == 3  # anchored on "what"
    assert align(words("anything"), []) == 0


def test_window_moves_past_held_words() -> None:
    a = Agreement()
    a.update(words("one two three four"))
    a.update(words("one two three four five"))
    assert a.window == words("one two three four")
    a.forget(3)  # the window now starts after "three"
    assert a.window == ["four"]
    assert a.update(words("four five six")) == ["five"]  # compared with the window only
    a.forget(10)
    assert a.window == [] and a.held == 0


def test_an_early_decode_of_the_whole_utterance_confirms_after_every_word() -> None:
    a = Agreement(confirmed=words("one two three four"), held=1, pending=["five"])
    assert a.update(words("one two three four five six"), whole=True) == ["five"]


def test_a_decode_up_to_a_pause_confirms_all_its_words() -> None:
    """An early decode follows a pause of the speaker's: its words are finished, so it confirms
    them even where the last live decode guessed others (tiny.en on a short command)."""
    a = Agreement()
    a.update(words("at the top."))
    assert a.update(words("hit the taren wick block")) == []
    new = a.update(words("Shut the tauron wick blind."), whole=True, paused=True)
    assert new == words("Shut the tauron wick blind.") and a.pending == []
    # ... but never over words already confirmed that it rewrites
    b = Agreement(confirmed=words("turn on"), held=2)
    assert b.update(words("burn off the lamp"), whole=True, paused=True) == []


def test_pieces_and_the_rest_of_the_final() -> None:
    assert piece(["And", "so"], first=True) == "And so"
    assert piece(["my"], first=False) == " my"
    assert piece([], first=False) == ""
    sent = words("And so my fellow")
    final = "And so my fellow Americans, ask not."
    assert "".join([" ".join(sent), rest(final, sent)]) == final
    assert rest("One, two, three.", words("one, two")) == " three."
    assert rest("In 1813.", words("In 1813.")) == ""
    assert rest("Hello there.", []) == "Hello there."
    # The final rewrote a confirmed word: the rest follows as many words as were sent.
    assert rest("Ask knot what you can do.", words("ask not what")) == " you can do."


def test_covered_counts_the_confirmed_words_the_last_hypothesis_starts_with() -> None:
    a = Agreement()
    a.update(words("one two"))
    a.update(words("one two three"))
    assert a.covered == 2 and a.before == []
    a.forget(1)  # the window starts after "one"
    assert a.before == ["one"]
    assert a.update(words("two three four")) == ["three"] and a.covered == 2
    assert a.update(words("zwei drei vier")) == [] and a.covered is None  # it disagreed
