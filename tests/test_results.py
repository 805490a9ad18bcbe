"""Held results: encoded once, served from bytes (whole, in slices or as a top-N prefix), within their byte budget."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.errors import Gone, JobFailed
from actors.jobs import get_job
from actors.master.results import CHUNK, Results

WORDCOUNT = get_job("wordcount").top
INDEX = get_job("inverted_index").top
WORDCOUNT_JSON = get_job("wordcount").encode
INDEX_JSON = get_job("inverted_index").encode


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counts(n: int, prefix: str = "w") -> dict[str, int]:
    return {f"{prefix}{i:06d}": (i * 7919) % 1000 + 1 for i in range(n)}


def test_a_result_is_encoded_once_and_kept_in_top_order() -> None:
    results = Results(1 << 20, 1 << 22, Clock())
    result = {"b": 2, "a": 2, "c": 9, "d": 1}
    held = results.hold("j1", result, WORDCOUNT_JSON)
    again = results.hold("j1", {"ignored": 1}, WORDCOUNT_JSON)
    assert again is held and results.encodes == 1
    assert held.keys == 4
    assert json.loads(held.payload) == result
    assert list(json.loads(held.payload)) == ["c", "a", "b", "d"]  # the job's order: count, then word
    assert results.held_bytes == held.size == len(held.payload)


def test_chunks_cover_the_payload_without_a_copy_larger_than_a_chunk() -> None:
    results = Results(1 << 24, 1 << 24, Clock())
    held = results.hold("j", counts(60_000), WORDCOUNT_JSON)
    pieces = list(held.chunks())
    assert held.size > 2 * CHUNK
    assert all(len(p) <= CHUNK for p in pieces)
    assert b"".join(pieces) == held.payload


@pytest.mark.parametrize("n", [1, 3, 10, 4_999, 5_000, 5_001, 100_000])
def test_top_reads_a_prefix_and_equals_the_jobs_own_top(n: int) -> None:
    result = counts(5_000)  # about 80 KB of JSON: past the first scan window
    held = Results(1 << 24, 1 << 24, Clock()).hold("j", result, WORDCOUNT_JSON)
    assert held.top(n) == [list(item) for item in WORDCOUNT(result, n)]


KEYS = st.text(alphabet=st.sampled_from(['"', "\\", "]", "[", ",", ":", "{", "}", "a", "é", "\u2028", "😀", " ", "1"]),
               min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(result=st.dictionaries(KEYS, st.integers(1, 10**12), max_size=60), n=st.integers(1, 70))
def test_top_survives_keys_that_look_like_json(result: dict[str, int], n: int) -> None:
    held = Results(1 << 24, 1 << 24, Clock()).hold("j", result, WORDCOUNT_JSON)
    assert held.top(n) == [list(item) for item in WORDCOUNT(result, n)]


def test_top_of_list_values_crossing_the_scan_window() -> None:
    result = {f"word{i}": [f"doc-{j}" for j in range(i % 5 + 1)] for i in range(8_000)}
    held = Results(1 << 24, 1 << 24, Clock()).hold("j", result, INDEX_JSON)
    for n in (1, 2_000, 8_000):
        assert held.top(n) == [list(item) for item in INDEX(result, n)]


def test_entries_longer_than_the_scan_window_are_read_whole() -> None:
    result = {"a": ["x" * 150_000], "b": ["y"], "c": ["z" * 70_000, "w"]}
    held = Results(1 << 24, 1 << 24, Clock()).hold("j", result, INDEX_JSON)
    assert held.top(3) == [list(item) for item in INDEX(result, 3)]
    assert [key for key, _ in held.entries(10**9)] == ["c", "a", "b"]


def test_a_result_over_the_per_job_cap_fails_naming_the_setting() -> None:
    results = Results(2048, 1 << 20, Clock())
    with pytest.raises(JobFailed, match=r"more than the 2048 bytes one job may hold \(MR_RESULT_MAX\)"):
        results.hold("big", counts(500), WORDCOUNT_JSON)
    assert results.held_bytes == 0
    assert results.get("big") is None


def test_a_result_over_the_whole_budget_fails_naming_the_setting() -> None:
    results = Results(1 << 20, 4096, Clock())
    with pytest.raises(JobFailed, match=r"MR_RESULTS_BUDGET"):
        results.hold("big", counts(500), WORDCOUNT_JSON)


def test_past_the_budget_the_oldest_results_are_dropped_and_answer_gone() -> None:
    clock = Clock()
    results = Results(1 << 20, 20_000, clock)
    held: list[Any] = []
    for i in range(5):
        clock.now += 10
        held.append(results.hold(f"j{i}", counts(400, prefix=f"j{i}-"), WORDCOUNT_JSON))  # ~6.4 KB each
        assert results.held_bytes <= results.budget
    size = held[0].size
    kept = results.budget // size
    assert 0 < kept < 5
    for i in range(5 - kept):
        with pytest.raises(Gone, match=r"expired for memory.*MR_RESULTS_BUDGET") as caught:
            results.get(f"j{i}")
        assert caught.value.status == 410
    assert [results.get(f"j{i}") for i in range(5 - kept, 5)] == held[5 - kept:]
    assert results.held_bytes == kept * size
    assert results.encodes == 5


def test_the_gone_message_says_how_long_after_finishing_it_was_dropped() -> None:
    clock = Clock()
    results = Results(1 << 20, 8000, clock)
    results.hold("old", counts(400), WORDCOUNT_JSON)
    clock.now += 42
    results.hold("new", counts(400, prefix="n"), WORDCOUNT_JSON)
    with pytest.raises(Gone, match=r"dropped 42 s after it finished"):
        results.get("old")


def test_forget_lets_go_of_held_bytes_and_of_the_drop_record() -> None:
    clock = Clock()
    results = Results(1 << 20, 8000, clock)
    results.hold("a", counts(400), WORDCOUNT_JSON)
    results.hold("b", counts(400, prefix="b"), WORDCOUNT_JSON)
    with pytest.raises(Gone):
        results.get("a")
    results.forget("a")
    results.forget("b")
    assert results.get("a") is None and results.get("b") is None
    assert results.held_bytes == 0
