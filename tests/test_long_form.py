"""Batched long-form decoding's pure parts (backends/long_form.py): chunks cut at pauses, lanes,
a decode's tokens read into segments, the library's fallback and silence rules, prompts."""

from __future__ import annotations

import itertools

import pytest

from wyoming_whisper.backends.long_form import (
    FULL_FRAMES,
    MAX_CHUNK_SECONDS,
    PROMPT_TOKENS,
    Chunk,
    Lane,
    Piece,
    batch_size,
    compression_ratio,
    fails,
    joined_spans,
    lanes,
    loops,
    plan_chunks,
    plan_lanes,
    prompt,
    silent,
    sparse,
    split_tokens,
    vad_parts,
    window_frames,
)

RATE = 16000
TS = 50364  # <|0.00|> in Whisper's vocabulary


def s(seconds: float) -> int:
    return round(seconds * RATE)


def spans(*pairs: tuple[float, float]) -> list[tuple[int, int]]:
    return [(s(a), s(b)) for a, b in pairs]


def test_short_speech_is_one_chunk_with_its_edges() -> None:
    chunks = plan_chunks(spans((2.0, 5.0), (5.5, 9.0)), s(20))
    assert chunks == [Chunk(s(1.0), s(10.0))]
    assert chunks[0].offset == 1.0 and chunks[0].seconds == 9.0


def test_edges_stop_at_the_recording() -> None:
    assert plan_chunks(spans((0.2, 4.0)), s(4.5)) == [Chunk(0, s(4.5))]


def test_no_speech_no_chunks() -> None:
    assert plan_chunks([], s(100)) == []
    assert plan_chunks([(5, 5)], s(100)) == []


def test_chunks_fit_the_window_cover_the_speech_and_do_not_overlap() -> None:
    # 3 s of speech, 0.4 s pauses, for 200 s
    pairs = [(k * 3.4, k * 3.4 + 3.0) for k in range(58)]
    chunks = plan_chunks(spans(*pairs), s(200))
    assert len(chunks) >= 7
    for a, b in itertools.pairwise(chunks):
        assert a.end <= b.start
    for chunk in chunks:
        assert chunk.seconds <= MAX_CHUNK_SECONDS
    for start, end in spans(*pairs):
        assert any(c.start <= start and end <= c.end for c in chunks)


def test_a_chunk_ends_at_the_widest_pause_near_its_end() -> None:
    # a sentence ends at 22 s (a 1 s pause); commas (0.2 s pauses) follow up to 40 s
    pairs = [(0.0, 22.0), *((23.0 + 2.2 * k, 25.0 + 2.2 * k) for k in range(8))]
    chunks = plan_chunks(spans(*pairs), s(45))
    assert chunks[0].end == s(22.5)  # the pause's middle (1 s edge allowed, half the pause)
    assert chunks[1].start == s(22.5)


def test_a_long_pause_always_ends_a_chunk_and_is_not_decoded() -> None:
    chunks = plan_chunks(spans((0.0, 5.0), (15.0, 20.0)), s(30))
    assert chunks == [Chunk(0, s(6.0)), Chunk(s(14.0), s(21.0))]


def test_speech_longer_than_a_window_is_cut_into_pieces_that_fit() -> None:
    chunks = plan_chunks(spans((1.0, 71.0)), s(80))
    assert len(chunks) == 3
    assert all(c.seconds <= MAX_CHUNK_SECONDS for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == s(72.0)


@pytest.mark.parametrize(
    ("count", "batch", "expected"),
    [
        (0, 4, []),
        (1, 4, [range(0, 1)]),
        (5, 4, [range(0, 3), range(3, 5)]),  # two chunks a lane at least
        (9, 4, [range(0, 3), range(3, 6), range(6, 9)]),  # 3 batches either way: 3 lanes
        (8, 4, [range(0, 2), range(2, 4), range(4, 6), range(6, 8)]),
        (6, 1, [range(0, 6)]),
    ],
)
def test_lanes_are_contiguous_and_few(count: int, batch: int, expected: list[range]) -> None:
    assert lanes(count, batch) == expected


def test_lanes_hold_whole_planned_chunks_and_their_speech() -> None:
    pairs = [(k * 3.4, k * 3.4 + 3.0) for k in range(40)]  # 136 s
    found = plan_lanes(spans(*pairs), s(140), batch=4)
    assert len(found) == len(lanes(len(plan_chunks(spans(*pairs), s(140))), 4)) >= 2
    assert [lane.begin for lane in found] == sorted(lane.begin for lane in found)
    assert sum(len(lane.spans) for lane in found) == 40
    for a, b in itertools.pairwise(found):
        assert a.end <= b.begin


def test_a_lane_plans_from_where_its_last_decode_ended() -> None:
    lane = Lane(spans((1.0, 10.0), (10.5, 20.0), (20.5, 40.0)), 0, s(41))
    first = lane.next_chunk()
    assert first is not None and first.start == 0
    lane.advance(first, None)  # decoded to its end
    second = lane.next_chunk()
    assert second is not None and second.start == first.end
    lane.advance(second, 4.0)  # stopped short 4 s in, with speech after: the rest comes next
    third = lane.next_chunk()
    assert third is not None and third.start == second.start + s(4.0)
    lane.advance(third, 0.5)  # no real progress: not decoded again
    assert lane.begin == third.end
    lane.advance(Chunk(lane.begin, s(41)), None)
    assert lane.next_chunk() is None


def test_a_decode_saying_far_too_little_for_its_speech_is_sparse() -> None:
    lane = Lane(spans((1.0, 10.0), (12.0, 20.0)), 0, s(21))
    assert lane.speech_seconds(Chunk(s(5.0), s(21.0))) == 13.0
    assert sparse(4, 19.0) and not sparse(40, 19.0)
    assert not sparse(1, 3.0)  # too little speech to tell


def test_a_batch_is_encoded_as_long_as_its_longest_chunk() -> None:
    assert window_frames([3.0]) == 1000  # the 10 s floor
    assert window_frames([3.0, 12.0]) == 1600  # 12 s and the 4 s margin
    assert window_frames([28.0]) == FULL_FRAMES


def test_cuda_decodes_larger_batches_than_cpu() -> None:
    assert batch_size("cuda") > batch_size("cpu") >= 1
    assert batch_size("rocm") == batch_size("cpu")


def t(seconds: float) -> int:
    return TS + round(seconds / 0.02)


def test_tokens_cut_at_timestamp_pairs() -> None:
    tokens = [t(0), 1, 2, t(2.0), t(2.0), 3, t(4.5)]
    assert split_tokens(tokens, TS, 10.0) == (
        [Piece(0.0, 2.0, (t(0), 1, 2, t(2.0))), Piece(2.0, 4.5, (t(2.0), 3, t(4.5)))],
        None,
    )


def test_a_decode_ending_on_a_pair_stopped_short() -> None:
    """The library decodes again from the pair's time; the text after it is dropped."""
    tokens = [t(0), 1, t(2.0), t(2.5), 3, 4]
    assert split_tokens(tokens, TS, 10.0) == ([Piece(0.0, 2.0, (t(0), 1, t(2.0)))], 2.0)
    tokens = [t(0), 1, t(2.0), t(6.0)]  # the start of a segment it did not write
    assert split_tokens(tokens, TS, 10.0) == ([Piece(0.0, 2.0, (t(0), 1, t(2.0)))], 2.0)


def test_one_segment_without_pairs() -> None:
    assert split_tokens([t(0.4), 1, 2, t(3.0)], TS, 10.0) == (
        [Piece(0.4, 3.0, (t(0.4), 1, 2, t(3.0)))],
        None,
    )
    assert split_tokens([1, 2], TS, 7.0) == ([Piece(0.0, 7.0, (1, 2))], None)
    assert split_tokens([], TS, 7.0) == ([], None)


def test_times_stay_within_the_chunk() -> None:
    assert split_tokens([t(0), 1, t(29.0)], TS, 12.5) == (
        [Piece(0.0, 12.5, (t(0), 1, t(29.0)))],
        None,
    )


def test_the_library_fallback_and_silence_rules() -> None:
    assert fails(2.5, -0.2, 0.1)  # repetitive
    assert fails(1.5, -1.2, 0.1)  # improbable
    assert not fails(2.5, -1.2, 0.7)  # improbable and likely silence: kept
    assert not fails(1.5, -0.5, 0.9)
    assert silent(0.7, -1.2)
    assert not silent(0.7, -0.5)  # probable text despite the no-speech probability
    assert not silent(0.5, -1.2)
    assert not fails(2.5, -0.2, 0.1, looping=False)  # a sentence said twice is no loop
    assert fails(1.5, -1.2, 0.1, looping=False)
    assert loops([5, 6, 7, 8] * 3) and not loops([5, 6, 7, 8, 9] * 2) and not loops([])
    assert compression_ratio("") == 0.0
    assert compression_ratio("la " * 100) > 2.4 > compression_ratio("A plain sentence.")


def test_prompts_as_the_library_builds_them() -> None:
    sot = [50257, 50362]
    assert prompt(50360, sot, [], []) == sot
    assert prompt(50360, sot, [1, 2], []) == [50360, 1, 2, *sot]
    assert prompt(50360, sot, [3], [7, 8]) == [50360, 7, 8, 3, *sot]
    long = list(range(1000))
    assert prompt(50360, sot, long, [])[1:-2] == long[-PROMPT_TOKENS:]


def test_a_long_recording_s_vad_runs_in_two_overlapping_parts_on_silero_s_grid() -> None:
    assert vad_parts(119 * 16000) is None
    parts = vad_parts(200 * 16000)
    assert parts is not None
    second_start, first_end = parts.second_start, parts.first_end
    assert second_start % 512 == 0 and first_end % 512 == 0
    assert second_start < 100 * 16000 < first_end and first_end - second_start >= 16 * 16000
    assert second_start < parts.low < 100 * 16000 < parts.high < first_end


def test_two_parts_spans_join_at_a_pause_both_heard() -> None:
    """Each side's own spans, cut in a moment of silence in both parts; none when speech fills
    the overlap (the caller runs the VAD once over the whole recording then)."""
    first = [(0, 100), (180, 260), (300, 420)]
    second = [(190, 260), (300, 420), (500, 600)]
    assert joined_spans(first, second, 150, 350) == [(0, 100), (190, 260), (300, 420), (500, 600)]
    assert joined_spans(first, second, 265, 290) == [(0, 100), (180, 260), (300, 420), (500, 600)]
    assert joined_spans([(0, 1000)], [(0, 1000)], 100, 900) is None
    assert joined_spans([], [], 100, 200) == []
