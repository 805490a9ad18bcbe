"""The sequential oracle: Counter over the input decoded with replacement, exactly as the mappers decode it (a BOM
at the input's start dropped, as every mapper drops it)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.sequential import run_sequential

RAW = st.lists(
    st.binary(max_size=6)
    | st.sampled_from([b" ", b"\n", b"word", b"\xef\xbb\xbf", b"\x85", "\u2003".encode(), "\x85".encode(), b"\xff",
                       b"\xe2\x80"]),
    max_size=40,
).map(b"".join)


@given(data=RAW)
@settings(max_examples=150, deadline=None)
def test_wordcount_equals_counter_over_replaced_decode(data: bytes) -> None:
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")
    assert run_sequential("wordcount", data) == Counter(text.split())


def test_invalid_utf8_is_replaced_not_dropped() -> None:
    data = b"caf\xe9 caf\xe9 ok\n\xff"
    assert run_sequential("wordcount", data) == {"caf\ufffd": 2, "ok": 1, "\ufffd": 1}


def test_unicode_whitespace_splits() -> None:
    data = "a\u2003b\x85c\u3000a".encode()
    assert run_sequential("wordcount", data) == {"a": 2, "b": 1, "c": 1}


def test_inverted_index() -> None:
    assert run_sequential("inverted_index", b"x y\nx", "book.txt") == {"x": ["book.txt"], "y": ["book.txt"]}


def test_invalid_utf8_is_replaced_as_the_mappers_do() -> None:
    assert run_sequential("wordcount", b"the cat the\ndog \xff\n") == {"the": 2, "cat": 1, "dog": 1, "\ufffd": 1}


def test_empty_input() -> None:
    assert run_sequential("wordcount", b"") == {}


def test_the_oracle_runs_any_job_with_its_parameters() -> None:
    text = b"Hello, hello! error: disk\nerror: net the\n"
    assert run_sequential("wordcount", text, params={"lower": "true", "strip_punctuation": "true"}) == {
        "hello": 2, "error": 2, "disk": 1, "net": 1, "the": 1}
    assert run_sequential("grep", text, params={"pattern": r"error: (\w+)"}) == {"disk": 1, "net": 1}
    assert run_sequential("median_length", text) == {"H": [6, 1], "h": [6, 1], "e": [6, 2], "d": [4, 1],
                                                     "n": [3, 1], "t": [3, 1]}


def test_the_oracle_over_several_inputs_and_real_keys() -> None:
    from actors.jobs import load_catalog
    from actors.sequential import run_job, run_sequential_inputs

    inputs = [("a.txt", b"x y\n"), ("b.txt", b"y\n")]
    assert run_sequential_inputs("inverted_index", inputs) == {"x": ["a.txt"], "y": ["a.txt", "b.txt"]}
    job = load_catalog().sdk("median_length")
    assert run_job(job, [("in", "ab abc\nb")]) == {"a": [2.5, 2], "b": [1, 1]}
