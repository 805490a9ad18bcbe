"""The result encoding: native and pure Python alike, byte for byte what json.dumps makes of the job's top order.

Every test of the counts encoder runs against both implementations; the native one is skipped (with the reason)
only when the extension was not built, and fails instead under scripts/asan_kernel.sh (MR_REQUIRE_NATIVE_KERNEL=1).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import astuple
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.core.errors import WireError
from actors.core.messages import Columns
from actors.jobs import get_job
from actors.jobs.result import OrderedRuns, general_json
from actors.jobs.wordcount import encode as resultjson
from actors.jobs.wordcount.columns import pack_columns, unpack_columns
from actors.jobs.wordcount.encode import counts_json_in_python, merge_json, ordered_columns
from actors.jobs.wordcount.kernel import PythonCountTable


def ordered_columns_in_python(result: dict[str, int]) -> Columns:
    """A partition as the pure-Python count table reports it: one run in top order."""
    table = PythonCountTable(1)
    table.add_columns(*astuple(pack_columns(result)))
    return Columns(*table.ordered_columns())

Encoder = Callable[[dict[str, int]], bytes]
FUZZ_EXAMPLES = int(os.environ.get("MR_KERNEL_FUZZ_EXAMPLES", "300"))


def _native(result: dict[str, int]) -> bytes:
    if resultjson._native is None:
        if os.environ.get("MR_REQUIRE_NATIVE_KERNEL") == "1":
            pytest.fail("MR_REQUIRE_NATIVE_KERNEL=1 but actors.jobs.wordcount._resultjson is not built")
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


# ------------------------------------------------------------------------------------ reported runs, merged


def _partitioned(result: dict[str, int], k: int) -> list[dict[str, int]]:
    parts: list[dict[str, int]] = [{} for _ in range(k)]
    for key, count in result.items():
        parts[zlib.crc32(key.encode("utf-8")) % k][key] = count
    return parts


ENCODABLE = [c for c in SPECIAL if not 0xD800 <= ord(c) <= 0xDFFF]  # strict UTF-8 carries no lone surrogate
UTF8_KEYS = st.text(alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from(ENCODABLE)), max_size=12)
POSITIVE = st.one_of(st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=2**63 - 1))
MERGES = pytest.mark.parametrize("native_merge", [True, False], ids=["native", "python"])


@pytest.fixture
def merging(native_merge: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The merge under test: native, or the fallback (the patch holds for every example hypothesis draws)."""
    if native_merge:
        _native({})  # skips (or fails under ASan) when the extension is not built
    else:
        monkeypatch.setattr(resultjson, "_native_merge", None)


@MERGES
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(result=st.dictionaries(UTF8_KEYS, POSITIVE, max_size=40), k=st.integers(min_value=1, max_value=5))
def test_merged_runs_are_byte_for_byte_the_whole_results_json(merging: None, result: dict[str, int], k: int) -> None:
    runs = [ordered_columns_in_python(part) for part in _partitioned(result, k) if part]
    assert OrderedRuns(tuple(runs)).to_dict() == result
    assert merge_json(runs) == reference(result)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(result=st.dictionaries(UTF8_KEYS, POSITIVE, min_size=1, max_size=40))
def test_a_reported_run_is_the_partition_in_top_order(result: dict[str, int]) -> None:
    in_python = ordered_columns_in_python(result)
    assert list(unpack_columns(in_python).items()) == sorted(result.items(), key=lambda kv: (-kv[1], kv[0]))
    if resultjson._native_columns is not None:
        assert ordered_columns(result) == in_python  # natively: the same bytes
    else:
        assert ordered_columns(result) is None  # without the extension a partition is reported as a map


@pytest.mark.parametrize("result", [{}, {"a": 0}, {"a": -1}, {"\ud800": 1}, {"a": True}, {1: 1}, {"a": 2**64}])
def test_what_cannot_be_a_run_is_reported_as_a_map(result: dict[Any, Any]) -> None:
    assert ordered_columns(result) is None


@MERGES
def test_a_run_out_of_top_order_is_still_merged_exactly(merging: None) -> None:
    unordered = pack_columns({"a": 1, "b": 5, "c": 5})  # not in top order: the native merge refuses it
    ordered = ordered_columns_in_python({"d": 3})
    assert merge_json([unordered, ordered]) == reference({"a": 1, "b": 5, "c": 5, "d": 3})


@MERGES
@pytest.mark.parametrize("run", [
    Columns(b"ab", (1).to_bytes(4, "little"), (1).to_bytes(8, "little")),  # the last key ends before the blob does
    Columns(b"a", (1).to_bytes(4, "little"), (0).to_bytes(8, "little")),  # a count of 0
    Columns(b"\xff", (1).to_bytes(4, "little"), (1).to_bytes(8, "little")),  # not UTF-8
    Columns(b"\xed\xa0\x80", (3).to_bytes(4, "little"), (1).to_bytes(8, "little")),  # an encoded surrogate
    Columns(b"aa", (1).to_bytes(4, "little") + (2).to_bytes(4, "little"), (1).to_bytes(8, "little") * 2),  # "a" twice
    Columns(b"a", (1).to_bytes(4, "little"), (1).to_bytes(7, "little")),  # a count cut short
])
def test_a_malformed_run_is_refused_with_a_wire_error(merging: None, run: Columns) -> None:
    with pytest.raises(WireError):
        merge_json([run])


def test_the_native_merge_refuses_what_it_cannot_prove_in_order() -> None:
    _native({})
    assert resultjson._native_merge is not None
    same = (b"ab", (1).to_bytes(4, "little") + (2).to_bytes(4, "little"), (2).to_bytes(8, "little") * 2)
    with pytest.raises(ValueError, match="top order"):
        resultjson._native_merge([(b"ba", same[1], same[2])])  # "b" before "a" at equal counts
    assert resultjson._native_merge([same]) == b'{"a":2,"b":2}'
    assert resultjson._native_merge([]) == b"{}"


@MERGES
@pytest.mark.parametrize("runs", [
    [Columns(b"aa", (1).to_bytes(4, "little") + (2).to_bytes(4, "little"),
             (5).to_bytes(8, "little") + (3).to_bytes(8, "little"))],  # "a" twice in one run, in top order
    [pack_columns({"a": 5}), pack_columns({"a": 3})],  # "a" from two partitions
], ids=["in_one_run", "in_two_runs"])
def test_a_key_reported_twice_is_refused_not_written_twice(merging: None, runs: list[Columns]) -> None:
    with pytest.raises(WireError):
        merge_json(runs)


def test_a_run_past_64_bit_counts_still_encodes_exactly() -> None:
    job = get_job("wordcount")
    big = Columns(b"ab", (1).to_bytes(4, "little") + (2).to_bytes(4, "little"),
                  (2**64 - 1).to_bytes(8, "little") + (2**63).to_bytes(8, "little"))
    assert json.loads(job.encode(OrderedRuns((big,)))) == {"a": 2**64 - 1, "b": 2**63}
