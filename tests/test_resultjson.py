"""The result encoding: native and pure Python alike, byte for byte what json.dumps makes of the job's top order.

Every test of the counts encoder runs against both implementations; the native one is skipped (with the reason)
only when the extension was not built, and fails instead under scripts/asan_kernel.sh (MR_REQUIRE_NATIVE_KERNEL=1).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.jobs import get_job, resultjson
from actors.jobs.resultjson import counts_json_in_python, general_json

Encoder = Callable[[dict[str, int]], bytes]
FUZZ_EXAMPLES = int(os.environ.get("MR_KERNEL_FUZZ_EXAMPLES", "300"))


def _native(result: dict[str, int]) -> bytes:
    if resultjson._native is None:
        if os.environ.get("MR_REQUIRE_NATIVE_KERNEL") == "1":
            pytest.fail("MR_REQUIRE_NATIVE_KERNEL=1 but actors.jobs._resultjson is not built")
        pytest.skip("the native result encoder is not built: pip install -e . with a C compiler")
    return resultjson._native(result)


IMPLEMENTATIONS = pytest.mark.parametrize("encode", [_native, counts_json_in_python], ids=["native", "python"])


def reference(result: Mapping[str, int]) -> bytes:
    """What the master held before the encoders: the job's own top order through json.dumps."""
    ordered = dict(sorted(result.items(), key=lambda item: (-item[1], item[0])))
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=True).encode("ascii")


# Every class of code point the escaping distinguishes: printable ASCII, the quote and backslash, the short escapes,
# other controls, DEL, Latin-1, the BMP, lone surrogates of both halves, and the astral planes.
SPECIAL = ['"', "\\", "\b", "\f", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "\x80", "é", "\u2028", "\ufffd",
           "\ud800", "\udbff", "\udc00", "\udfff", "\U00010000", "😀", "\U0010ffff", " ", "/", "~"]
KEYS = st.text(alphabet=st.one_of(st.characters(codec=None, blacklist_categories=()), st.sampled_from(SPECIAL)),
               max_size=12)
COUNTS = st.one_of(st.integers(min_value=1, max_value=6), st.integers(min_value=-(2**63), max_value=2**63 - 1))


@IMPLEMENTATIONS
@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(result=st.dictionaries(KEYS, COUNTS, max_size=40))
def test_counts_json_is_byte_for_byte_json_dumps_of_the_top_order(encode: Encoder, result: dict[str, int]) -> None:
    assert encode(result) == reference(result)


@IMPLEMENTATIONS
def test_every_code_point_is_escaped_as_json_escapes_it(encode: Encoder) -> None:
    # One key per block of 4096 code points, so each key mixes neighbouring classes; surrogates included.
    result = {"".join(map(chr, range(start, min(start + 4096, 0x110000)))): start for start in range(0, 0x110000, 4096)}
    assert encode(result) == reference(result)


@IMPLEMENTATIONS
def test_ties_are_ordered_by_key_in_code_point_order(encode: Encoder) -> None:
    # ASCII against non-ASCII keys (the native comparison's two paths) and prefixes of each other.
    # And keys equal in their first 8 characters, the native comparison's packed prefix, however they go on.
    result = dict.fromkeys(["b", "a", "ab", "a\x00", "é", "e", "\U0001f600", "\uffff", "", "Z", "abcdefgh",
                            "abcdefghi", "abcdefgh\x00", "abcdefg", "abcdefg\x00", "abcdefgÿ", "abcdefgÿé",
                            "abcdefgā", "ÿÿÿÿÿÿÿÿ", "ÿÿÿÿÿÿÿÿ\x00"], 3)
    assert encode(result) == reference(result)
    assert list(json.loads(encode(result))) == sorted(result)


@IMPLEMENTATIONS
def test_the_extremes_of_a_count(encode: Encoder) -> None:
    result = {"max": 2**63 - 1, "min": -(2**63), "zero": 0, "one": 1}
    assert encode(result) == reference(result)


@pytest.mark.parametrize("result", [{"big": 2**63}, {"small": -(2**63) - 1}])
def test_a_count_past_a_long_long_is_refused_natively_not_wrapped(result: dict[str, int]) -> None:
    with pytest.raises(OverflowError):
        _native(result)
    assert counts_json_in_python(result) == reference(result)  # Python's ints have no such edge


@IMPLEMENTATIONS
@pytest.mark.parametrize("result", [{1: 2}, {"a": True}, {"a": 1.0}, {"a": "1"}, {("a",): 1}])
def test_anything_but_str_to_int_is_refused(encode: Encoder, result: dict[Any, Any]) -> None:
    with pytest.raises(TypeError):
        encode(result)


def test_a_str_subclass_key_is_left_to_the_general_path() -> None:
    class Word(str):
        pass

    for encode in (_native, counts_json_in_python):
        with pytest.raises(TypeError):
            encode({Word("a"): 1})


def test_the_empty_result() -> None:
    assert counts_json_in_python({}) == b"{}"
    assert _native({}) == b"{}"


def test_a_large_result_encodes_the_same_natively_and_in_python() -> None:
    result = {f"w{i * 7919 % 100_003}é" if i % 5 == 0 else f"w{i}": 1 + i % 13 for i in range(100_000)}
    assert _native(result) == counts_json_in_python(result) == reference(result)


def test_the_wordcount_job_encodes_with_the_fast_path_and_falls_back_for_anything_else() -> None:
    job = get_job("wordcount")
    counts = {"the": 3, "a": 3, "é": 1}
    assert job.encode(counts) == reference(counts)
    big = {"huge": 2**70, "a": 1}  # exact ints past a long long still encode, through json.dumps
    assert job.encode(big) == json.dumps({"huge": 2**70, "a": 1}, separators=(",", ":")).encode()


def test_general_json_keeps_the_jobs_own_order() -> None:
    job = get_job("inverted_index")
    result = {"b": ["x"], "a": ["x", "y"], "c": ["x", "y"]}
    assert general_json(result, job.top) == b'{"a":["x","y"],"c":["x","y"],"b":["x"]}'
    assert job.encode(result) == general_json(result, job.top)
