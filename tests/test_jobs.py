"""Jobs: word count equals Counter(text.split()), inverted index is a sorted union, the registry names the jobs."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.errors import BadRequest, WireError
from actors.jobs import get_job, job_names

TEXT = st.text(
    alphabet=st.sampled_from([*"ab cé\n\t日", "\u2003", "\x85", "\u00a0", "\x1c", "\u3000", "\ufffd"]),
    max_size=80,
)


def test_registry() -> None:
    assert job_names() == ["grep", "inverted_index", "median_length", "wordcount"]
    assert get_job("wordcount").name == "wordcount"
    assert get_job("inverted_index").name == "inverted_index"


@pytest.mark.parametrize("name", ["sort", "", "WordCount", "wordcount "])
def test_unknown_job_is_a_bad_request_listing_the_known(name: str) -> None:
    with pytest.raises(BadRequest) as info:
        get_job(name)
    assert info.value.status == 400
    assert repr(name) in str(info.value)
    assert "inverted_index" in str(info.value) and "wordcount" in str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# wordcount


@given(text=TEXT)
@settings(max_examples=200, deadline=None)
def test_wordcount_map_is_counter_of_split(text: str) -> None:
    assert get_job("wordcount").map(text, "src") == Counter(text.split())


@given(texts=st.lists(TEXT, max_size=6))
@settings(max_examples=100, deadline=None)
def test_wordcount_combine_sums(texts: list[str]) -> None:
    job = get_job("wordcount")
    into: dict[str, Any] = {}
    for text in texts:
        job.combine(into, dict(Counter(text.split())))
    assert into == Counter(" ".join(texts).split())


def test_wordcount_combine_into_empty_copies() -> None:
    job = get_job("wordcount")
    part = {"a": 1}
    into: dict[str, Any] = {}
    job.combine(into, part)
    job.combine(into, {"a": 2})
    assert into == {"a": 3}
    assert part == {"a": 1}


def test_wordcount_checksum() -> None:
    assert get_job("wordcount").checksum({"a": 3, "b": 4}) == 7
    assert get_job("wordcount").checksum({}) == 0


@pytest.mark.parametrize("value", [True, False, 0, -1, "1", 1.0, None, [1]])
def test_wordcount_check_refuses(value: Any) -> None:
    with pytest.raises(WireError):
        get_job("wordcount").check({"ok": 1, "bad": value})


def test_wordcount_check_accepts() -> None:
    get_job("wordcount").check({"a": 1, "b": 2**62})
    get_job("wordcount").check({})


def test_wordcount_top() -> None:
    result = {"b": 2, "a": 2, "c": 5, "d": 1}
    assert get_job("wordcount").top(result, 3) == [("c", 5), ("a", 2), ("b", 2)]


# ---------------------------------------------------------------------------------------------------------------
# inverted_index


def test_inverted_index_map() -> None:
    out = get_job("inverted_index").map("b a b\nc", "doc.txt")
    assert out == {"a": ["doc.txt"], "b": ["doc.txt"], "c": ["doc.txt"]}


NAMES = st.lists(st.sampled_from(["a.txt", "b.txt", "c.txt", "d.txt", "é.txt"]), min_size=1, max_size=3).map(
    lambda names: sorted(set(names))
)


@given(parts=st.lists(st.dictionaries(st.sampled_from(["x", "y", "z"]), NAMES, max_size=3), max_size=6),
       seed=st.integers(0, 100))
@settings(max_examples=150, deadline=None)
def test_inverted_index_combine_is_a_sorted_union(parts: list[dict[str, list[str]]], seed: int) -> None:
    job = get_job("inverted_index")
    expected: dict[str, set[str]] = {}
    for part in parts:
        for key, names in part.items():
            expected.setdefault(key, set()).update(names)
    snapshot = [{k: list(v) for k, v in p.items()} for p in parts]
    order = list(parts)
    random.Random(seed).shuffle(order)
    into: dict[str, Any] = {}
    for part in order:
        job.combine(into, part)
    assert into == {key: sorted(names) for key, names in expected.items()}
    assert parts == snapshot  # combine never mutates the parts' lists


def test_inverted_index_combine_examples() -> None:
    job = get_job("inverted_index")
    into: dict[str, Any] = {"w": ["b.txt"]}
    job.combine(into, {"w": ["a.txt", "c.txt"]})
    assert into == {"w": ["a.txt", "b.txt", "c.txt"]}
    job.combine(into, {"w": ["b.txt"]})
    assert into == {"w": ["a.txt", "b.txt", "c.txt"]}


def test_inverted_index_checksum() -> None:
    assert get_job("inverted_index").checksum({"a": ["x", "y"], "b": ["x"]}) == 3


@pytest.mark.parametrize("value", [[], "a.txt", ["a.txt", 1], [None], 1, True, {"a.txt": 1}])
def test_inverted_index_check_refuses(value: Any) -> None:
    with pytest.raises(WireError):
        get_job("inverted_index").check({"ok": ["a.txt"], "bad": value})


def test_inverted_index_top() -> None:
    result = {"a": ["x"], "b": ["x", "y"], "c": ["x", "y"]}
    assert get_job("inverted_index").top(result, 2) == [("b", ["x", "y"]), ("c", ["x", "y"])]
