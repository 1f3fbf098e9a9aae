"""The fitted encoder window (backends/encoder_window.py): its pure rules, the faster-whisper
contract the server relies on (backends/faster_whisper_internals.py, the window's and every other
private name's), and real decodes on tiny.en against the library's own 30 s window."""

from __future__ import annotations

import tomllib
import urllib.request
from dataclasses import dataclass
from typing import Any

import faster_whisper
import numpy as np
import pytest
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim

from wyoming_whisper.audio import read_file
from wyoming_whisper.backends import encoder_window
from wyoming_whisper.backends.base import CancelToken
from wyoming_whisper.backends.encoder_window import (
    FULL_FRAMES,
    FULL_WINDOW,
    SILENT,
    Fit,
    content_frames,
    degenerate,
    fitted_model_class,
    said_twice,
    stutters,
)
from wyoming_whisper.backends.faster_whisper import FasterWhisperBackend
from wyoming_whisper.backends.faster_whisper_internals import (
    CHECKED,
    contract_problems,
    window_problems,
)
from wyoming_whisper.backends.long_form import loops
from wyoming_whisper.backends.mlx import MlxBackend
from wyoming_whisper.errors import Abandoned

from .harness import REPO, ServerProcess, clip, words


@dataclass
class Thresholds:  # the fields of faster-whisper's TranscriptionOptions that the guard reads
    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6


TIMESTAMP_BEGIN = 50364  # tiny.en's <|0.00|>
LOW, HIGH = (".".join(map(str, v)) for v in CHECKED)  # the faster-whisper versions checked


def judge(tokens: list[int], text: str = "hello there", **overrides: Any) -> str | None:
    values = {"avg_logprob": -0.2, "compression_ratio": 1.2, "no_speech_prob": 0.01}
    values |= {"seconds": 2.0, "window": 4.0}
    values.update(overrides)
    return degenerate(
        tokens=tokens,
        text=text,
        cap=40,
        timestamp_begin=TIMESTAMP_BEGIN,
        options=Thresholds(),
        fit=Fit(),
        **values,
    )


def test_the_installed_faster_whisper_keeps_the_contract() -> None:
    """Fails loudly after an upgrade that changes a private name the server relies on (the fitted
    window's methods, the Silero session, the hub table, WhisperModel's attributes): read the new
    code, then move CHECKED in faster_whisper_internals.py and the pin in pyproject.toml."""
    assert contract_problems() == []
    assert fitted_model_class() is not None


@pytest.mark.parametrize("version", ["0.10.0", HIGH, f"{HIGH}rc1", "99.0.0"])
def test_a_faster_whisper_outside_the_checked_range_breaks_loudly(
    version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade past CHECKED fails the contract test above even where no source line moved,
    and a server on it decodes with the library's own 30 s window."""
    monkeypatch.setattr(faster_whisper, "__version__", version)
    outside = f"faster-whisper {version} is outside {LOW} <= v < {HIGH}"
    assert outside in contract_problems() and outside in window_problems()
    assert fitted_model_class() is None
    assert FasterWhisperBackend("cpu", 0, "int8").encoder_window == "full"


@pytest.mark.parametrize("version", [LOW, f"{LOW}.post1"])
def test_a_faster_whisper_inside_the_checked_range_keeps_the_window(
    version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faster_whisper, "__version__", version)
    assert window_problems() == []


def test_window_is_audio_plus_margin_at_least_the_floor_at_most_30_s() -> None:
    fit = Fit(margin=2.0, floor=4.0)
    assert fit.frames(100) == 400  # 1 s -> the 4 s floor
    assert Fit().frames(270) == 1000  # the defaults: a 2.7 s command -> the 10 s floor
    assert fit.frames(270) == 470  # 2.7 s + 2 s
    assert fit.frames(271) == 472  # even: the encoder's convolution halves it
    assert fit.frames(2900) == FULL_FRAMES and fit.frames(FULL_FRAMES) == FULL_FRAMES


def test_content_frames_finds_the_padding_pad_or_trim_added() -> None:
    features = np.random.default_rng(1).normal(size=(80, 270)).astype(np.float32)
    assert content_frames(pad_or_trim(features)) == 270
    assert content_frames(features) == 270
    assert content_frames(np.zeros((80, FULL_FRAMES), np.float32)) == 0


def test_the_guard_accepts_a_plain_decode() -> None:
    assert judge([TIMESTAMP_BEGIN, 400, 401, 402, TIMESTAMP_BEGIN + 100]) is None


@pytest.mark.parametrize(
    ("tokens", "text", "overrides", "why"),
    [
        (list(range(40)), "x", {}, "no end of text before the cap"),
        ([7, 8, 9, 10] * 3, "a b c d a b c d a b c d", {}, "repeated n-grams"),
        ([1, 2], "1, 1, 1,", {}, "repeated words"),
        ([1, 2], "8. The Press Yard 8. The Press Yard 8", {}, "repeated words"),
        ([1, 2], "Switch off the porch light, Swich off the porch light.", {}, "a phrase said"),
        ([1, 2], "x", {"compression_ratio": 3.0}, "compression ratio"),
        ([1, 2], "x", {"avg_logprob": -1.5}, "low log-probability"),
        ([1, 2], " ".join(f"w{i}" for i in range(20)), {}, "too long for the audio"),
        ([TIMESTAMP_BEGIN, 5, TIMESTAMP_BEGIN + 400], "x", {}, "timestamps past the window"),
    ],
)
def test_the_guard_names_each_degenerate_decode(
    tokens: list[int], text: str, overrides: dict[str, float], why: str
) -> None:
    reason = judge(tokens, text, **overrides)
    assert reason is not None and reason.startswith(why)


def test_silence_in_a_shortened_opening_window_is_left_to_the_full_window() -> None:
    """generate_segments drops a window judged silence. A tail that an earlier window covered
    stays dropped; the opening window (a one-word command would vanish) is redone at 30 s, where
    the library makes that call."""
    silence = {"avg_logprob": -1.5, "no_speech_prob": 0.9}
    assert judge([1], "Thank you.", **silence) is None
    assert (
        judge([1], "Thank you.", **silence, opening=True) == "silence in a shortened opening window"
    )
    assert judge([1], "Thank you.", **silence, opening=True, window=30.0) is None


def test_stutters_is_a_word_thrice_or_a_phrase_twice_in_a_row() -> None:
    assert stutters("Yes, yes, yes.") and stutters("the press, the press, the press")
    assert stutters("It is of the press yard. The press yard!")
    assert not stutters("No, no.") and not stutters("Turn on the the light.")
    assert not stutters("ask not what your country can do for you, ask what you can do")
    assert not stutters("")


def test_said_twice_is_a_phrase_again_at_once_perhaps_respelt() -> None:
    """What tiny.en made of "Turn on the Zephyrine heater" with Home Assistant's names as
    hotwords in a 10 s window (tests/data/repeat/): exact repeats are ``stutters``' too."""
    assert said_twice("Turn on the Maffering Keaker, Tarn on the Maffering Keaker")
    assert said_twice("Switch off the Vasselhoff lamp, Swich off the Vasselhoff lamp.")
    assert said_twice("Okay. Turn the fan off, turn the fan of, please")
    assert said_twice("Turbander-Neffyrine heater, Turbander-Neffyrine heater,")
    assert not said_twice("No, no.") and not said_twice("Turn on the the light.")
    assert not said_twice("Turn on the kitchen light and turn on the kitchen fan")
    assert not said_twice("It was the best of times, it was the worst of times")
    assert not said_twice("ask not what your country can do for you, ask what you can do")
    assert not said_twice("")


def test_repeated_needs_three_occurrences() -> None:
    assert not loops([1, 2, 3, 4, 1, 2, 3, 4])
    assert loops([1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4])
    assert not loops([1, 2])


# --- real decodes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_en() -> str:
    return FasterWhisperBackend("cpu", 0, "int8").resolve("tiny.en")


def _decode(model: WhisperModel, audio: np.ndarray, **kwargs: object) -> tuple[list, str]:
    segments, _ = model.transcribe(audio, language="en", beam_size=5, **kwargs)
    kept = list(segments)
    return kept, "".join(s.text for s in kept).strip()


def close(a: float, b: float) -> bool:
    """Within 0.25 s, on Whisper's 10 ms grid (so 0.2500000001 from float sums counts as 0.25).

    The int8 kernels differ by CPU: on one the fitted window put jfk's last word end at the
    30 s window's 10.50 s, on another (AMD EPYC) at 10.72 s (the speech ends at 10.50 s).
    """
    return round(abs(a - b), 2) <= 0.25


def test_fitted_window_keeps_text_and_timestamps_of_the_full_window(tiny_en: str) -> None:
    """jfk.flac (11 s): same words; segment and word times within 0.25 s of the 30 s window's."""
    audio = read_file(str(clip("openai_whisper/jfk.flac")))
    full = WhisperModel(tiny_en, device="cpu", compute_type="int8", local_files_only=True)
    fitted = fitted_model(tiny_en)
    want, want_text = _decode(full, audio, word_timestamps=True)
    with fitted.decoding() as decode:
        got, got_text = _decode(fitted, audio, word_timestamps=True)
    assert decode.fallbacks == 0
    assert words(got_text) == words(want_text)
    assert [words(s.text) for s in got] == [words(s.text) for s in want]
    for a, b in zip(got, want, strict=True):
        assert close(a.start, b.start) and close(a.end, b.end), (a, b)
    got_words = [w for s in got for w in s.words]
    want_words = [w for s in want for w in s.words]
    assert [words(w.word) for w in got_words] == [words(w.word) for w in want_words]
    for wa, wb in zip(got_words, want_words, strict=True):
        if words(wa.word) == ["my"]:
            # One window starts "my" at 1.06 s, inside "so" (loud until 1.2 s; the gap is
            # 1.25-1.35 s, speech again from 1.35 s), the other in the gap: which one does
            # depends on the CPU's int8 kernels (the 30 s window on one, the fitted on another).
            assert close(wa.end, wb.end), (wa, wb)
            assert all(1.0 <= w.start <= 1.45 for w in (wa, wb)), (wa, wb)
            continue
        assert close(wa.start, wb.start) and close(wa.end, wb.end), (wa, wb)


def fitted_model(path: str, fit: Fit | None = None) -> Any:
    """The fitted model of the installed faster-whisper (int8 on the CPU)."""
    fitted_class = fitted_model_class()
    assert fitted_class is not None
    return fitted_class(path, device="cpu", compute_type="int8", local_files_only=True, fit=fit)


def first_verdict(monkeypatch: pytest.MonkeyPatch, why: str) -> list[int]:
    """Make the first encoded window's decode judged ``why`` (this CPU's own verdict may differ)
    and the others judged as usual; returns the frames of every window encoded, as they come."""
    encode, judge, windows = WhisperModel.encode, encoder_window.degenerate, []

    def counted(self: Any, features: np.ndarray) -> Any:
        windows.append(features.shape[-1])
        return encode(self, features)

    def forced_at_first(**kwargs: Any) -> str | None:
        return why if len(windows) == 1 else judge(**kwargs)

    monkeypatch.setattr(WhisperModel, "encode", counted)
    monkeypatch.setattr(encoder_window, "degenerate", forced_at_first)
    return windows


def starved_model(path: str) -> Any:
    """A fitted model whose token cap (one token) cuts every shortened decode off: degenerate."""
    return fitted_model(path, Fit(tokens_base=1, tokens_per_second=0.0))


def test_a_degenerate_short_decode_falls_back_to_the_full_window_text(tiny_en: str) -> None:
    """A cap of one token cuts every shortened decode off before its end of text: each window is
    decoded again at 30 s, so the text is exactly the library's, and every fallback is counted."""
    audio = read_file(str(clip("speech_recognition/english.wav")))
    full = WhisperModel(tiny_en, device="cpu", compute_type="int8", local_files_only=True)
    starved = starved_model(tiny_en)
    _, want = _decode(full, audio)
    with starved.decoding() as decode:
        _, got = _decode(starved, audio)
    assert got == want
    assert words(got) in (["1", "2", "3"], ["one", "two", "three"])
    assert decode.fallbacks == 1


def test_a_one_word_command_gets_the_library_text(tiny_en: str) -> None:
    """'One' (the first 0.55 s of english.wav): a 10 s window of it says '1, 1, 1,' here; the
    guard takes that for what it is and the text is the library's."""
    audio = read_file(str(clip("speech_recognition/english.wav")))[: int(0.55 * 16000)]
    full = WhisperModel(tiny_en, device="cpu", compute_type="int8", local_files_only=True)
    fitted = fitted_model(tiny_en)
    _, want = _decode(full, audio, vad_filter=True)
    with fitted.decoding() as decode:
        _, got = _decode(fitted, audio, vad_filter=True)
    assert got == want and not stutters(got), (got, want)
    assert decode.fallbacks == 1
    # An early decode of it too: one 30 s try under the same token cap passes the checks.
    with fitted.decoding(CancelToken(speculative=True)) as decode:
        _, early = _decode(fitted, audio, vad_filter=True)
    assert early == want and decode.fallbacks == 1


def test_a_loop_is_redone_in_a_wider_window_before_30_s(
    tiny_en: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """english.wav's "one" and 0.3 s after it (an early decode's audio, 0.78 s) loops in the 10 s
    window here ("1, 1, 1, 1"; which window lengths loop depends on the CPU's int8 kernels, so the
    first verdict is forced): it is redone in a 15 s window, which gives the library's text, and
    the 30 s pass is never paid, for an early decode as for a final."""
    audio = read_file(str(clip("speech_recognition/english.wav")))[: int(0.78 * 16000)]
    full = WhisperModel(tiny_en, device="cpu", compute_type="int8", local_files_only=True)
    _, want = _decode(full, audio, vad_filter=True)
    fitted = fitted_model(tiny_en)
    windows = first_verdict(monkeypatch, "repeated words")
    for token in (CancelToken(speculative=True), CancelToken()):  # an early decode, a final
        windows.clear()
        with fitted.decoding(token) as decode:
            _, got = _decode(fitted, audio, vad_filter=True)
        assert got == want and words(got) in (["1"], ["one"]), (got, want)
        assert windows == [1000, 1500] and decode.fallbacks == 1, windows
    assert Fit().widened(1000) == 1500 and Fit().widened(1400) is None  # 21 s: go to 30 s


def test_a_one_word_command_a_short_window_calls_silence_keeps_its_word(
    tiny_en: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """espeak's "One." (0.76 s): on an AMD EPYC a 10 s window of it decodes " one." with a
    no-speech probability of 0.66 and a log-probability of -1.04, which generate_segments drops as
    silence (an Intel Xeon's decodes "1" and keeps it); the library's 30 s window hears the word.
    Whatever this CPU's window makes of it, the word is kept; with the silent verdict forced
    (CPU-independent), the decode is redone at 30 s at once, not in a wider window (silence is not
    a loop), and gives the library's text."""
    audio = read_file(str(clip("espeak/one.flac")))
    full = WhisperModel(tiny_en, device="cpu", compute_type="int8", local_files_only=True)
    fitted = fitted_model(tiny_en)
    _, want = _decode(full, audio, vad_filter=True)
    _, got = _decode(fitted, audio, vad_filter=True)
    assert words(want) == ["one"] and words(got) in (["one"], ["1"]), (got, want)
    windows = first_verdict(monkeypatch, SILENT)
    with fitted.decoding() as decode:
        _, got = _decode(fitted, audio, vad_filter=True)
    assert got == want and windows == [1000, FULL_FRAMES], (got, want, windows)
    assert decode.fallbacks == 1


def test_speculative_work_gives_up_instead_of_decoding_at_30_s(tiny_en: str) -> None:
    """An early decode or a partial (speculative) whose short decode is degenerate tries the 30 s
    window once under the same token cap, and raises Abandoned when that is degenerate too: a
    looping 30 s decode would hold the worker the final answer needs."""
    audio = read_file(str(clip("speech_recognition/english.wav")))
    starved = starved_model(tiny_en)
    gave_up = pytest.raises(Abandoned, match=r"no end of text before the cap .* also at 30 s")
    with starved.decoding(CancelToken(speculative=True)) as decode, gave_up:
        _decode(starved, audio)
    assert decode.fallbacks == 0
    # The final answer: decoded again at 30 s, as the library does.
    with starved.decoding(CancelToken()) as decode:
        _, text = _decode(starved, audio)
    assert words(text) in (["1", "2", "3"], ["one", "two", "three"])
    assert decode.fallbacks == 1


def test_a_decode_overtaken_during_the_30_s_encode_gives_up_before_decoding_it(
    tiny_en: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An early decode overtaken by new speech while its 30 s window encodes (it is a hypothesis
    now) stops there: the worker goes to the decode that is wanted, not to a 30 s decode."""
    audio = read_file(str(clip("speech_recognition/english.wav")))
    starved = starved_model(tiny_en)
    token = CancelToken(speculative=True)
    encode, full_windows = WhisperModel.encode, []

    def overtaken(self: Any, features: np.ndarray) -> Any:
        output = encode(self, features)
        if features.shape[-1] == FULL_FRAMES:
            full_windows.append(features.shape)
            token.live = True  # what Stream._supersede_early does when speech goes on
        return output

    monkeypatch.setattr(WhisperModel, "encode", overtaken)
    with starved.decoding(token) as decode, pytest.raises(Abandoned, match="live decode"):
        _decode(starved, audio)
    assert len(full_windows) == 1 and decode.fallbacks == 0


@pytest.mark.parametrize("fit", [None, FULL_WINDOW], ids=["auto", "full"])
def test_the_language_detection_s_encoding_is_the_opening_window_s(
    fit: Fit | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A multilingual model told no language: faster-whisper encodes the opening window to
    detect the language, then again to decode it; here once, with the library's text, segments
    and language (base on jfk.flac: one window)."""
    base = FasterWhisperBackend("cpu", 0, "int8").resolve("base")
    audio = read_file(str(clip("openai_whisper/jfk.flac")))
    library = WhisperModel(base, device="cpu", compute_type="int8", local_files_only=True)
    ours = fitted_model(base, fit)
    encode, encoded = WhisperModel.encode, []

    def counted(self: Any, features: np.ndarray) -> Any:
        encoded.append((self is ours, features.shape[-1]))
        return encode(self, features)

    monkeypatch.setattr(WhisperModel, "encode", counted)
    want, want_info = library.transcribe(audio, beam_size=5)
    want = list(want)
    with ours.decoding() as decode:
        got, got_info = ours.transcribe(audio, beam_size=5)
        got = list(got)
    assert [n for mine, n in encoded if not mine] == [3000, 3000]  # the library: twice
    frames = [n for mine, n in encoded if mine]
    assert len(frames) == 1 and decode.fallbacks == 0, frames
    assert frames[0] < 3000 if fit is None else frames[0] == 3000
    assert got_info.language == want_info.language == "en"
    assert words(" ".join(s.text for s in got)) == words(" ".join(s.text for s in want))
    if fit is not None:  # the same 30 s window: the same decode
        assert [(s.start, s.end, s.text) for s in got] == [(s.start, s.end, s.text) for s in want]


def test_full_mode_and_mlx_use_the_library_window() -> None:
    assert FasterWhisperBackend("cpu", 0, "int8").encoder_window == "auto"
    assert FasterWhisperBackend("cpu", 0, "int8", encoder_window="full").encoder_window == "full"
    assert MlxBackend().encoder_window == "full"


def test_pyproject_pins_the_checked_range() -> None:
    """The range faster-whisper may take is the one faster_whisper_internals.py was checked
    against."""
    with open(REPO / "pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    pin = next(d for d in deps if d.startswith("faster-whisper"))
    assert pin == f"faster-whisper>={LOW},<{HIGH.removesuffix('.0')}"


def test_health_and_metrics_report_the_window(server: ServerProcess, start_server) -> None:  # type: ignore[no-untyped-def]
    """The shared server runs auto; its fallback count is in /health and, per model, /metrics."""
    window = server.health()["encoder_window"]
    assert window["mode"] == "auto" and isinstance(window["fallbacks"], int)
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    for model in ("tiny.en", "base"):
        assert f'whisper_encoder_window_fallbacks_total{{model="{model}"}}' in metrics
    full: ServerProcess = start_server(
        "-m", "tiny.en", "--no-zeroconf", "--no-wyoming", env={"WHISPER_ENCODER_WINDOW": "full"}
    )
    assert full.health()["encoder_window"] == {"mode": "full", "fallbacks": 0}
