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


# ---------------------------------------------------------------------------------------------------------------
# built-ins on the SDK contract: each native engine equals its own SDK form (mapper per line, reducer per key)


def sdk_form(name: str, text: str, params: dict[str, str] | None = None, source: str = "src") -> dict[str, Any]:
    from actors.sequential import run_sequential

    return run_sequential(name, text.encode("utf-8", "surrogatepass"), source, params)


NORMALISE = [{}, {"lower": "true"}, {"strip_punctuation": "true"}, {"lower": "true", "strip_punctuation": "true"},
             {"lower": "false", "strip_punctuation": "false"}]
PUNCT_TEXT = st.text(alphabet=st.sampled_from([*"aB .,!'(-)\n\t", "É", "ß", "İ", "\u2003", "\x85"]), max_size=80)


@given(text=PUNCT_TEXT, index=st.integers(0, len(NORMALISE) - 1))
@settings(max_examples=200, deadline=None)
def test_wordcount_engine_equals_its_sdk_form(text: str, index: int) -> None:
    params = NORMALISE[index]
    engine = get_job("wordcount", params)
    acc = engine.partial()
    engine.map_into(acc, text, "src")
    assert engine.finish(dict(acc)) == sdk_form("wordcount", text, params)


def test_wordcount_default_is_still_the_c_counter_path() -> None:
    from actors.jobs.wordcount.engine import WordCountEngine

    engine = get_job("wordcount")
    assert isinstance(engine, WordCountEngine) and engine.plain
    assert get_job("wordcount", {"lower": "true"}).map("The the THE", "s") == {"the": 3}
    assert get_job("wordcount", {"strip_punctuation": "true"}).map("(a) a, -- 'a'", "s") == {"a": 3}


@given(text=TEXT)
@settings(max_examples=100, deadline=None)
def test_inverted_index_engine_equals_its_sdk_form(text: str) -> None:
    engine = get_job("inverted_index")
    assert engine.finish(dict(engine.map(text, "doc"))) == sdk_form("inverted_index", text, source="doc")


def test_grep_counts_matches_per_line_and_group_one() -> None:
    text = "error: disk error: net\nwarning: disk\nerror:\nerr\nor: x\n"
    assert sdk_form("grep", text, {"pattern": r"error: (\w+)"}) == {"disk": 1, "net": 1}
    assert sdk_form("grep", text, {"pattern": r"disk"}) == {"disk": 2}
    assert sdk_form("grep", text, {"pattern": r"err\nor"}) == {}  # a match never spans lines
    assert sdk_form("grep", "ab b", {"pattern": r"(a)?b"}) == {"a": 1}  # group 1 not taking part: not counted
    job = get_job("grep", {"pattern": r"(\w)\w*"})
    assert job.finish(job.map("apple avocado\nbanana", "s")) == {"a": 2, "b": 1}


@pytest.mark.parametrize(("params", "message"), [
    ({}, "needs a non-empty parameter pattern"), ({"pattern": ""}, "needs a non-empty parameter pattern"),
    ({"pattern": "[a-"}, "bad pattern"), ({"pattern": "x" * 1001}, "longer than 1000"),
    ({"pattern": "a", "flags": "i"}, "has no parameter flags"),
])
def test_grep_refuses_bad_parameters(params: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest, match=message) as info:
        get_job("grep", params)
    assert info.value.status == 400 and info.value.code == "bad_params"


def test_median_length_is_a_reduce_over_every_value() -> None:
    job = get_job("median_length")
    first, second = job.map("abc ab\n", "s"), job.map("abcd a a\n", "s")
    merged = job.partial()
    job.combine(merged, first)
    job.combine(merged, second)
    assert job.checksum(merged) == 5
    assert job.finish(merged) == {"a": [2, 5]}
    assert job.finish(job.map("ab abc\n", "s")) == {"a": [2.5, 2]}
    assert job.top({"a": [2, 5], "b": [1, 9]}, 1) == [("b", [1, 9])]


@pytest.mark.parametrize("part", [{"a": 3}, {"a": []}, {"a": [float("nan")]}, {"\x00[1.5]": [1]}, {"a": [b"x"]}])
def test_sdk_partials_from_a_peer_are_checked(part: dict[str, Any]) -> None:
    with pytest.raises(WireError):
        get_job("median_length").check(part)
