"""OpenAI's audio API with the openai SDK against the real server (tiny.en default, base)."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from .audio_files import encode, read_mono
from .harness import ServerProcess, clip, eventually, words

JFK = "openai_whisper/jfk.flac"
JFK_WORDS = words(
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)


def overlap(text: str, reference: list[str]) -> float:
    """Share of the reference's words that appear in ``text``."""
    got = set(words(text))
    return sum(w in got for w in reference) / len(reference)


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def transcribe(client: openai.OpenAI, path: Path, **kwargs):
    model = kwargs.pop("model", "whisper-1")
    with open(path, "rb") as f:
        return client.audio.transcriptions.create(file=f, model=model, **kwargs)


@pytest.mark.smoke
def test_json_default_format(client: openai.OpenAI) -> None:
    result = transcribe(client, clip(JFK))
    assert isinstance(result, openai.types.audio.Transcription)
    assert overlap(result.text, JFK_WORDS) >= 0.9
    assert result.text == result.text.strip()
    assert result.usage is not None and result.usage.type == "duration"
    assert result.usage.seconds == 11


def test_text_format(client: openai.OpenAI) -> None:
    text = transcribe(client, clip(JFK), response_format="text")
    assert isinstance(text, str)
    assert overlap(text, JFK_WORDS) >= 0.9


SRT_CUE = re.compile(
    r"^(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n(.+)$"
)
VTT_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$")


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def test_srt_format(client: openai.OpenAI) -> None:
    srt = transcribe(client, clip(JFK), response_format="srt")
    assert isinstance(srt, str)
    cues = [c for c in srt.strip().split("\n\n") if c]
    assert cues
    last_end = 0.0
    texts = []
    for number, cue in enumerate(cues, start=1):
        match = SRT_CUE.match(cue)
        assert match, cue
        assert int(match[1]) == number
        start, end = _seconds(*match.groups()[1:5]), _seconds(*match.groups()[5:9])
        assert last_end <= start <= end <= 11.5
        last_end = end
        texts.append(match[10])
    assert overlap(" ".join(texts), JFK_WORDS) >= 0.9


def test_vtt_format(client: openai.OpenAI) -> None:
    vtt = transcribe(client, clip(JFK), response_format="vtt")
    assert isinstance(vtt, str)
    assert vtt.startswith("WEBVTT\n\n")
    blocks = vtt[len("WEBVTT\n\n") :].strip().split("\n\n")
    texts = []
    for block in blocks:
        timing, text = block.split("\n", 1)
        match = VTT_TIME.match(timing)
        assert match, timing
        assert _seconds(*match.groups()[:4]) <= _seconds(*match.groups()[4:]) <= 11.5
        texts.append(text)
    assert overlap(" ".join(texts), JFK_WORDS) >= 0.9


def test_verbose_json_with_word_timestamps(client: openai.OpenAI) -> None:
    result = transcribe(
        client,
        clip(JFK),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert isinstance(result, openai.types.audio.TranscriptionVerbose)
    assert result.language == "english"
    assert result.duration == pytest.approx(11.0, abs=0.1)
    assert overlap(result.text, JFK_WORDS) >= 0.9
    assert result.segments and result.words
    for i, seg in enumerate(result.segments):
        assert seg.id == i
        assert 0 <= seg.start <= seg.end <= 11.5
        assert seg.tokens and all(isinstance(t, int) for t in seg.tokens)
        assert seg.temperature in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
        assert seg.avg_logprob < 0 and seg.compression_ratio > 0
        assert 0 <= seg.no_speech_prob <= 1
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    assert all(0 <= w.start <= w.end <= 11.5 for w in result.words)
    assert all(w.word == w.word.strip() and w.word for w in result.words)
    assert words(" ".join(w.word for w in result.words)) == words(result.text)
    # "country" is said last: its word sits near the end of the clip.
    assert words(result.words[-1].word) == ["country"] and result.words[-1].end > 9.0


def test_verbose_json_words_only_and_segments_only(client: openai.OpenAI) -> None:
    only_words = transcribe(
        client, clip(JFK), response_format="verbose_json", timestamp_granularities=["word"]
    )
    assert only_words.words and only_words.segments is None
    plain = transcribe(client, clip(JFK), response_format="verbose_json")
    assert plain.segments and plain.words is None


def test_temperature_is_used_as_given(client: openai.OpenAI) -> None:
    result = transcribe(client, clip(JFK), response_format="verbose_json", temperature=0.3)
    assert result.segments and all(s.temperature == pytest.approx(0.3) for s in result.segments)


def test_prompt_and_language_are_accepted(client: openai.OpenAI) -> None:
    result = transcribe(
        client,
        clip(JFK),
        model="base",
        language="en",
        prompt="President Kennedy's inaugural address, 1961.",
        response_format="verbose_json",
    )
    assert result.language == "english"
    assert overlap(result.text, JFK_WORDS) >= 0.9


def test_base_detects_german(client: openai.OpenAI) -> None:
    result = transcribe(
        client, clip("picovoice_leopard/test_de.wav"), model="base", response_format="verbose_json"
    )
    assert result.language == "german"
    assert overlap(result.text, ["portal", "raum", "wurde"]) >= 2 / 3


def test_stream_true_iterates_deltas_then_done(client: openai.OpenAI) -> None:
    with open(clip(JFK), "rb") as f:
        stream = client.audio.transcriptions.create(file=f, model="whisper-1", stream=True)
        events = list(stream)
    types = [e.type for e in events]
    assert types[-1] == "transcript.text.done"
    assert types[:-1] and set(types[:-1]) == {"transcript.text.delta"}
    deltas = "".join(e.delta for e in events[:-1])  # type: ignore[union-attr]
    done = events[-1].text  # type: ignore[union-attr]
    assert deltas == done
    assert overlap(done, JFK_WORDS) >= 0.9


def test_translation_to_english_with_multilingual_model(client: openai.OpenAI) -> None:
    path = clip("cuttledoc_fleurs/fleurs-de-001.ogg")
    with open(path, "rb") as f:
        translated = client.audio.translations.create(file=f, model="base")
    with open(path, "rb") as f:
        verbose = client.audio.translations.create(
            file=f, model="base", response_format="verbose_json"
        )
    german = transcribe(client, path, model="base")
    got = words(translated.text)
    assert {"dinosaur", "water"} & set(got), translated.text
    assert not {"der", "wasser", "auch", "ein"} & set(got), translated.text
    assert {"wasser", "der"} & set(words(german.text)), german.text  # the same clip, untranslated
    assert verbose.language == "english" and verbose.segments


def test_english_only_model_refuses_translation(client: openai.OpenAI) -> None:
    path = clip("picovoice_leopard/test_de.wav")
    with open(path, "rb") as f, pytest.raises(openai.BadRequestError) as info:
        client.audio.translations.create(file=f, model="tiny.en")
    assert info.value.status_code == 400
    assert "English-only" in info.value.message
    assert info.value.body["code"] == "unsupported"  # type: ignore[index]
    assert info.value.body["param"] == "model"  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "codec", "rate", "layout", "container"),
    [
        ("jfk.m4a", "aac", 44100, "stereo", "mp4"),
        ("jfk.webm", "libopus", 48000, "stereo", "webm"),
        ("jfk.opus", "libopus", 48000, "mono", "ogg"),
        ("jfk.mp3", "libmp3lame", 22050, "stereo", "mp3"),
        ("jfk.wav", "pcm_s16le", 8000, "stereo", "wav"),
        ("jfk.flac", "flac", 32000, "mono", "flac"),
    ],
)
def test_containers_rates_and_channels(
    client: openai.OpenAI,
    tmp_path: Path,
    name: str,
    codec: str,
    rate: int,
    layout: str,
    container: str,
) -> None:
    path = encode(
        read_mono(clip(JFK)),
        tmp_path / name,
        codec=codec,
        rate=rate,
        layout=layout,
        container=container,
    )
    assert overlap(transcribe(client, path).text, JFK_WORDS) >= 0.85


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"tiny.en", "base"}
    assert models["tiny.en"].model_extra["default"] is True  # type: ignore[index]
    assert models["base"].model_extra["multilingual"] is True  # type: ignore[index]
    assert all(m.object == "model" and m.owned_by for m in models.values())
    assert client.models.retrieve("base").id == "base"
    assert client.models.retrieve("whisper-1").id == "tiny.en"
    assert client.models.retrieve("gpt-4o-mini-transcribe").id == "tiny.en"
    assert client.models.retrieve("whisper-large-v3").id == "tiny.en"  # the reference's alias
    assert client.models.retrieve("whisper-base").id == "base"  # whisper-<served name>
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-9-nonexistent")


def test_unload_then_reload_on_demand(client: openai.OpenAI, server: ServerProcess) -> None:
    reply = client.post("/model/unload", body={"model": "base"}, cast_to=object)
    assert reply["unloaded"] == ["base"]  # type: ignore[index]
    assert reply["status"] == "success" and reply["model"] == "base"  # type: ignore[index]
    assert reply["was_loaded"] is True  # type: ignore[index]
    states = {m["name"]: (m["state"], m["loaded"]) for m in server.health()["models"]}
    assert states == {"base": ("unloaded", False), "tiny.en": ("loaded", True)}
    # Unloading it again: nothing to do, said so (query-parameter form).
    again = client.post("/model/unload?model=base", cast_to=object)
    assert again["was_loaded"] is False and again["unloaded"] == []  # type: ignore[index]
    # The next request for it loads it again.
    result = transcribe(client, clip(JFK), model="base")
    assert overlap(result.text, JFK_WORDS) >= 0.9
    states = {m.id: m.model_extra["state"] for m in client.models.list()}  # type: ignore[index]
    assert states["base"] == "loaded"


def test_health_answers_fast_while_a_long_file_transcribes(
    client: openai.OpenAI, server: ServerProcess
) -> None:
    """The event loop never blocks on decoding or inference."""
    path = clip("faster_whisper/multilingual.mp3")
    done = threading.Event()
    outcome: list[object] = []

    def work() -> None:
        try:
            outcome.append(transcribe(client, path, response_format="text"))
        except Exception as err:  # reported below
            outcome.append(err)
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    latencies = []
    while not done.is_set():
        started = time.perf_counter()
        with urllib.request.urlopen(server.url + "/health", timeout=5) as resp:
            assert resp.status == 200
            models = json.loads(resp.read())["models"]
        busy = any(m["active_requests"] for m in models)
        if busy:
            latencies.append(time.perf_counter() - started)
        time.sleep(0.02)
    worker.join()
    assert isinstance(outcome[0], str) and len(words(outcome[0])) > 20, outcome
    assert len(latencies) >= 10, latencies
    print(f"/health during a transcription: {len(latencies)} polls, max {max(latencies):.4f} s")
    # Typically under 35 ms; a decode on the loop would stall it for seconds (one 30 s window).
    assert max(latencies) < 0.5, sorted(latencies)[-5:]


def test_stream_client_leaving_early_cancels_cleanly(
    client: openai.OpenAI, server: ServerProcess
) -> None:
    with open(clip("faster_whisper/multilingual.mp3"), "rb") as f:
        stream = client.audio.transcriptions.create(file=f, model="whisper-1", stream=True)
        first = next(iter(stream))
        stream.close()
    assert first.type == "transcript.text.delta"
    eventually(
        lambda: not any(m["active_requests"] for m in server.health()["models"]),
        30,
        interval=0.1,
        what="the abandoned decode stopped",
    )
    assert overlap(transcribe(client, clip(JFK)).text, JFK_WORDS) >= 0.9
    assert "Unhandled error" not in server.log()
