"""COLUMNS shuffle frames: packed keys and counts round-trip exactly; every malformed column is a 400."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Literal

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core import wire
from actors.core.errors import WireError
from actors.core.messages import Columns, Commit, StreamHeader, from_wire, to_wire
from actors.jobs import get_job
from actors.jobs.wordcount import kernel
from actors.jobs.wordcount.columns import pack_columns, unpack_columns
from actors.reducer.app import LEDGER, check_frame
from actors.reducer.stage import Stage
from actors.reducer.totals import PackedTotals

from .conftest import TOKEN, Cluster, ClusterFactory
from .support import report_totals
from .test_reducer import commit, data, finalize, header

Unpack = Callable[[Columns], dict[str, int]]


def _native(columns: Columns) -> dict[str, int]:
    if not kernel.NATIVE:
        pytest.skip(f"the native kernel is not built ({kernel.native_status()})")
    return kernel.unpack_columns(columns)


UNPACKERS = pytest.mark.parametrize("unpack", [_native, unpack_columns], ids=["native", "python"])
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
KEYS = st.text(st.characters(blacklist_categories=SURROGATES), max_size=12)  # any key a decoded text can hold
ITEMS = st.dictionaries(KEYS, st.one_of(st.integers(1, 5), st.integers(1, 2**64 - 1)), min_size=1, max_size=60)


def le32(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "little") for v in values)


def le64(*values: int) -> bytes:
    return b"".join(v.to_bytes(8, "little") for v in values)


@UNPACKERS
@given(items=ITEMS)
@settings(max_examples=200, deadline=None)
def test_columns_round_trip_through_the_wire_exactly(unpack: Unpack, items: dict[str, int]) -> None:
    raw = wire.decode(wire.encode(to_wire(pack_columns(items))), 1 << 20)
    columns = from_wire(raw, Columns)
    assert len(columns) == len(items)
    got = unpack(columns)
    assert got == items
    assert list(got) == list(items)  # the mapper's order is kept (frames are cut from it)
    assert all(type(v) is int for v in got.values())


def test_the_layout_is_the_documented_one() -> None:
    columns = pack_columns({"a": 1, "é": 2, "日本": 300})
    assert columns == Columns(keys="aé日本".encode(), ends=le32(1, 3, 9), counts=le64(1, 2, 300))


MALFORMED = [
    ("ends_not_whole", Columns(b"ab", b"\x02\x00\x00", le64(1)), "4-byte offsets"),
    ("no_keys", Columns(b"", b"", b""), "4-byte offsets"),
    ("counts_short", Columns(b"ab", le32(1, 2), le64(1)), "need 16 bytes of counts"),
    ("counts_long", Columns(b"ab", le32(1, 2), le64(1, 1, 1)), "need 16 bytes of counts"),
    ("counts_not_whole", Columns(b"ab", le32(1, 2), le64(1, 1)[:-1]), "need 16 bytes of counts"),
    ("ends_short_of_blob", Columns(b"abc", le32(1, 2), le64(1, 1)), "not at the end"),
    ("ends_past_blob", Columns(b"ab", le32(1, 3), le64(1, 1)), "not at the end"),
    # Native: refused before reading past the key bytes (it once read there first, then saw the decrease).
    ("offset_past_blob", Columns(b"ab", le32(9, 2), le64(1, 1)), "must not decrease|key 0 ends at 9, past the end"),
    ("decreasing", Columns(b"abc", le32(2, 1, 3), le64(1, 1, 1)), "must not decrease"),
    ("zero_count", Columns(b"ab", le32(1, 2), le64(1, 0)), "positive"),
    ("invalid_utf8", Columns(b"a\xff", le32(1, 2), le64(1, 1)), "UTF-8"),
    ("cut_inside_a_character", Columns("é".encode(), le32(1, 2), le64(1, 1)), "UTF-8"),
    ("encoded_surrogate", Columns(b"\xed\xa0\x80", le32(3), le64(1)), "UTF-8"),
    ("overlong", Columns(b"\xc0\xaf", le32(2), le64(1)), "UTF-8"),
    ("duplicate_keys", Columns(b"abab", le32(2, 4), le64(1, 1)), "duplicate"),
    ("duplicate_empty_keys", Columns(b"", le32(0, 0), le64(1, 1)), "duplicate"),
]


@UNPACKERS
@pytest.mark.parametrize(("name", "columns", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_columns_are_wire_errors(unpack: Unpack, name: str, columns: Columns, message: str) -> None:
    with pytest.raises(WireError, match=message):
        unpack(columns)


def test_native_unpack_refuses_what_is_not_bytes() -> None:
    if not kernel.NATIVE:
        pytest.skip("the native kernel is not built")
    from actors.jobs.wordcount._wordcount import unpack_columns as native

    for args in [(b"a", le32(1)), (b"a", le32(1), le64(1), b""), ("a", le32(1), le64(1)),
                 (bytearray(b"a"), le32(1), le64(1)), (b"a", memoryview(le32(1)), le64(1))]:
        with pytest.raises(TypeError):
            native(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize("values", [[0], [-1], [2**64], [True, 1.5], ["1"]])
def test_pack_refuses_values_columns_cannot_carry(values: list[Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        pack_columns({f"k{i}": v for i, v in enumerate(values)})
    with pytest.raises(ValueError):
        pack_columns({})


def test_check_frame_lets_only_byte_string_columns_through_undecoded() -> None:
    good = wire.encode(to_wire(pack_columns({f"k{i}": 1 for i in range(5000)})))
    assert len(good) > 1024
    check_frame(good, 16)  # its key count is checked after the (copy-speed) decode, not here
    fields = to_wire(pack_columns({"a": 1}))
    hidden = [
        {**fields, "keys": list(range(2000))},  # a big array where a byte string belongs: decoding it costs
        {**fields, "counts": {f"k{i}": i for i in range(500)}},
        {**fields, "ends": "x" * 2000},
        {"v": fields["v"], "type": "columns", "ends": fields["ends"], "keys": b"x" * 2000, "counts": fields["counts"]},
        {**fields, "extra": b"x" * 2000},
    ]
    for body in hidden:
        with pytest.raises(WireError, match="neither a DATA nor a KEYPART"):
            check_frame(cbor2.dumps(body), 16)


def test_only_byte_strings_after_reads_heads_exactly() -> None:
    prefix = b"\xa2atbx"
    names = ("b",)
    assert wire.only_byte_strings_after(prefix + b"ab" + b"\x43xyz", prefix, names)
    assert wire.only_byte_strings_after(prefix + b"ab" + b"\x58\x03xyz", prefix, names)
    assert not wire.only_byte_strings_after(prefix + b"ab" + b"\x43xy", prefix, names)  # truncated
    assert not wire.only_byte_strings_after(prefix + b"ab" + b"\x43xyzz", prefix, names)  # trailing
    assert not wire.only_byte_strings_after(prefix + b"ab" + b"\x5f\x41x\xff", prefix, names)  # indefinite
    assert not wire.only_byte_strings_after(prefix + b"ab" + b"\x63xyz", prefix, names)  # text, not bytes
    assert not wire.only_byte_strings_after(prefix + b"ab" + b"\x58", prefix, names)  # cut head
    assert not wire.only_byte_strings_after(prefix + b"ac" + b"\x43xyz", prefix, names)  # another field
    assert not wire.only_byte_strings_after(b"\xa2atby" + b"ab" + b"\x43xyz", prefix, names)


# ------------------------------------------------------------------------------------------- reducer streams

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CAP = 16 * 1024 * 1024


def columns_frame(columns: Columns) -> bytes:
    return wire.frame(to_wire(columns), CAP)


async def post(cluster: Cluster, body: bytes) -> tuple[int, Any]:
    async with cluster.session.post(cluster.reducers[0].url + "/internal/v1/shuffle", data=body,
                                    headers=AUTH) as response:
        raw = await response.read()
        if response.content_type == "application/cbor":
            return response.status, cbor2.loads(raw)
        return response.status, await response.json()


async def test_a_reducer_merges_columns_and_data_frames_alike(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    first = header(0) + columns_frame(pack_columns({"a": 2, "é": 1})) + data({"b": 4}) + commit(2, 3, 7)
    assert (await post(cluster, first))[1]["status"] == "committed"
    second = header(1) + columns_frame(pack_columns({"a": 5, "日": 2**40})) + commit(1, 2, 5 + 2**40)
    assert (await post(cluster, second))[1]["status"] == "committed"
    assert (await post(cluster, second))[1]["status"] == "duplicate"
    status, report = await finalize(cluster, splits=2)
    assert status == 200
    assert report_totals(report) == {"a": 7, "é": 1, "b": 4, "日": 2**40}


async def test_a_columns_only_partition_is_reported_from_the_count_table_the_same_every_time(
        make_cluster: ClusterFactory) -> None:
    # A lost finalize answer is asked again: the count table is read, never drained, so the answer repeats.
    cluster = await make_cluster(mappers=1, reducers=1)
    first = header(0) + columns_frame(pack_columns({"b": 2, "é": 1, "a": 2})) + commit(1, 3, 5)
    second = header(1) + columns_frame(pack_columns({"a": 5, "日": 2**40})) + commit(1, 2, 5 + 2**40)
    for stream in (first, second):
        assert (await post(cluster, stream))[1]["status"] == "committed"
    partition = cluster.reducers[0].app[LEDGER].jobs["j1"][0]
    merged = partition.merged
    assert isinstance(merged, PackedTotals) and len(merged.table) == 4 and not partition.totals  # no dict of keys
    status, report = await finalize(cluster, splits=2)
    assert status == 200
    assert report_totals(report) == {"日": 2**40, "a": 7, "b": 2, "é": 1}
    assert [(await finalize(cluster, splits=2))[1] for _ in range(2)] == [report, report]


def test_a_staged_columns_frame_is_charged_its_bytes_not_a_decoded_map() -> None:
    stage = Stage(get_job("wordcount"), 1 << 20)
    columns = pack_columns({f"w{i}": 1 + i for i in range(1000)})
    if not kernel.NATIVE:  # no packing without the extension: its mappers send maps, and so must any peer
        with pytest.raises(WireError, match="takes no COLUMNS frames"):
            stage.add(columns)
        return
    stage.add(columns)
    wire_bytes = len(columns.keys) + len(columns.ends) + len(columns.counts)
    assert wire_bytes <= stage.held < wire_bytes + 200 and stage.parts == [columns]


def _frame_of(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


STREAM_FAULTS = [
    ("too_many_keys", columns_frame(pack_columns({f"k{i}": 1 for i in range(16_385)})), 413, "MR_FRAME_KEYS"),
    ("decreasing", columns_frame(Columns(b"abc", le32(2, 1, 3), le64(1, 1, 1))), 400, "must not decrease"),
    ("zero_count", columns_frame(Columns(b"ab", le32(1, 2), le64(1, 0))), 400, "positive"),
    ("invalid_utf8", columns_frame(Columns(b"a\xff", le32(1, 2), le64(1, 1))), 400, "UTF-8"),
    ("counts_short", columns_frame(Columns(b"ab", le32(1, 2), le64(1))), 400, "bytes of counts"),
    ("text_keys", _frame_of(cbor2.dumps({**to_wire(pack_columns({"a": 1})), "keys": "a"})), 400, "bad value"),
    ("hidden_array", _frame_of(cbor2.dumps({**to_wire(pack_columns({"a": 1})), "keys": list(range(2000))})), 400,
     "neither a DATA nor a KEYPART"),
    ("other_version", _frame_of(cbor2.dumps({**to_wire(pack_columns({"a": 1})), "v": 2})), 400, "version"),
]


@pytest.mark.parametrize(("name", "frame", "status", "message"), STREAM_FAULTS, ids=[f[0] for f in STREAM_FAULTS])
async def test_bad_columns_change_nothing(make_cluster: ClusterFactory, name: str, frame: bytes, status: int,
                                          message: str) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    got, answer = await post(cluster, header(size=1 << 20) + data({"z": 1}) + frame + commit(2, 2, 2))
    assert got == status, answer
    assert message in answer["message"]
    assert (await post(cluster, header(0) + columns_frame(pack_columns({"a": 1})) + commit(1, 1, 1)))[1][
        "status"] == "committed"
    assert report_totals((await finalize(cluster, splits=1))[1]) == {"a": 1}


async def test_columns_for_a_job_whose_values_are_not_counts_are_refused(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    index = wire.frame(to_wire(StreamHeader(job="ix", epoch=1, split=0, attempt=1, partition=0, partitions=1,
                                            job_name="inverted_index", size=1000)), CAP)
    got, answer = await post(cluster, index + columns_frame(pack_columns({"a": 1})) + commit(1, 1, 1))
    assert got == 400, answer
    assert "job 'inverted_index' takes no COLUMNS frames" in answer["message"]


def test_commit_totals_of_a_columns_frame_count_its_keys_and_values() -> None:
    stage = Stage(get_job("wordcount"), 1 << 20)
    stage.add(pack_columns({"x": 3, "y": 4}))
    stage.verify(Commit(frames=1, keys=2, checksum=7))
    with pytest.raises(WireError, match="COMMIT does not match"):
        stage.verify(Commit(frames=1, keys=2, checksum=8))
