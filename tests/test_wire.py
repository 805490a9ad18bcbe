"""The wire codec: strict CBOR items (no tags, no duplicates, bounded depth, plain types) and length-prefixed frames."""

from __future__ import annotations

import datetime
import struct
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core import wire
from actors.core.errors import PayloadTooLarge, WireError

CAP = 1 << 20

# ---------------------------------------------------------------------------------------------------------------
# Round trips

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def same(a: Any, b: Any) -> bool:
    """Equal with types: True is not 1, 1.0 is not 1."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(value=VALUES)
@settings(max_examples=200, deadline=None)
def test_round_trip(value: Any) -> None:
    if depth(value) > wire.MAX_DEPTH:
        return
    assert same(wire.decode(wire.encode(value), CAP), value)


def test_shuffle_like_map_round_trips() -> None:
    counts = {f"w{i}": i + 1 for i in range(5000)} | {"é": 2**40, "": 1}
    assert wire.decode(wire.encode({"v": 1, "type": "data", "items": counts}), CAP)["items"] == counts


# ---------------------------------------------------------------------------------------------------------------
# Strictness


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(cbor2.dumps(cbor2.CBORTag(0, "2024-01-01T00:00:00Z")), id="tag0-datetime-string"),
        pytest.param(cbor2.dumps(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)), id="tag0-from-datetime"),
        pytest.param(cbor2.dumps(cbor2.CBORTag(1, 1_700_000_000)), id="tag1-epoch"),
        pytest.param(cbor2.dumps(2**70), id="tag2-bignum"),
        pytest.param(cbor2.dumps(-(2**70)), id="tag3-negative-bignum"),
        pytest.param(cbor2.dumps(cbor2.CBORTag(55799, {"a": 1})), id="tag55799-self-describe"),
        pytest.param(cbor2.dumps(cbor2.CBORTag(100, "x")), id="tag100-unknown"),
        pytest.param(cbor2.dumps(cbor2.CBORTag(258, [1, 2])), id="tag258-set"),
        pytest.param(cbor2.dumps({"a": cbor2.CBORTag(1, 0)}), id="tag-in-map-value"),
        pytest.param(cbor2.dumps({"a": {"b": [1, cbor2.CBORTag(100, 1)]}}), id="tag-deep-in-map"),
        pytest.param(cbor2.dumps([1, cbor2.CBORTag(2, b"\x01")]), id="tag-in-list"),
    ],
)
def test_tags_refused(data: bytes) -> None:
    with pytest.raises(WireError):
        wire.decode(data, CAP)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(bytes.fromhex("a2 6161 01 6161 02".replace(" ", "")), id="top-level"),
        pytest.param(bytes.fromhex("a1 6178 a2 6162 01 6162 02".replace(" ", "")), id="nested"),
        pytest.param(bytes.fromhex("81 a2 6162 01 6162 01".replace(" ", "")), id="in-list-same-values"),
    ],
)
def test_duplicate_keys_refused(data: bytes) -> None:
    with pytest.raises(WireError):
        wire.decode(data, CAP)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(bytes.fromhex("9f 01 02 ff".replace(" ", "")), id="array"),
        pytest.param(bytes.fromhex("bf 6161 01 ff".replace(" ", "")), id="map"),
        pytest.param(bytes.fromhex("7f 6161 6162 ff".replace(" ", "")), id="text"),
        pytest.param(bytes.fromhex("5f 4101 4102 ff".replace(" ", "")), id="bytes"),
        pytest.param(bytes.fromhex("a1 6161 9f 01 ff".replace(" ", "")), id="nested-array"),
    ],
)
def test_indefinite_length_refused(data: bytes) -> None:
    with pytest.raises(WireError):
        wire.decode(data, CAP)


def nested(levels: int, leaf: Any = 1, as_map: bool = False) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"k": value} if as_map else [value]
    return value


@pytest.mark.parametrize("as_map", [False, True])
def test_depth(as_map: bool) -> None:
    ok = nested(wire.MAX_DEPTH, as_map=as_map)
    assert wire.decode(cbor2.dumps(ok), CAP) == ok
    for levels in (wire.MAX_DEPTH + 1, wire.MAX_DEPTH + 5):
        with pytest.raises(WireError):
            wire.decode(cbor2.dumps(nested(levels, as_map=as_map)), CAP)


def test_very_deep_nesting_is_a_wire_error_not_a_crash() -> None:
    data = b"\x81" * 100_000 + b"\x01"
    with pytest.raises(WireError):
        wire.decode(data, CAP)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({1: 2}, id="int-key"),
        pytest.param({b"k": 1}, id="bytes-key"),
        pytest.param({None: 1}, id="null-key"),
        pytest.param({True: 1}, id="bool-key"),
        pytest.param({1.5: 1}, id="float-key"),
        pytest.param({"a": {2: 3}}, id="nested-int-key"),
        pytest.param([{"ok": 1}, {3: 4}], id="int-key-in-list"),
    ],
)
def test_non_string_map_keys_refused(value: Any) -> None:
    with pytest.raises(WireError):
        wire.decode(cbor2.dumps(value), CAP)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xa1\x82\x01\x02\x01", id="array-key"),
        pytest.param(b"\xa1\xa1\x61a\x01\x01", id="map-key"),
    ],
)
def test_container_map_keys_refused(data: bytes) -> None:
    with pytest.raises(WireError):
        wire.decode(data, CAP)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xf7", id="undefined"),
        pytest.param(b"\xf0", id="simple-16"),
        pytest.param(b"\xf8\x20", id="simple-32"),
        pytest.param(b"\xf8\xff", id="simple-255"),
        pytest.param(b"\x82\x01\xf7", id="undefined-in-list"),
        pytest.param(b"\xa1\x61a\xf0", id="simple-in-map"),
        pytest.param(b"\xa1\x61a\x81\xf7", id="undefined-in-list-in-map"),
    ],
)
def test_undefined_and_simple_values_refused(data: bytes) -> None:
    with pytest.raises(WireError):
        wire.decode(data, CAP)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(cbor2.dumps({"a": [1, 2, 3]})[:-1], id="map"),
        pytest.param(cbor2.dumps("hello")[:-2], id="text"),
        pytest.param(b"\x1a\x00\x01", id="uint32"),
        pytest.param(b"\x82\x01", id="array"),
    ],
)
def test_truncated_item(data: bytes) -> None:
    with pytest.raises(WireError):
        wire.decode(data, CAP)


def test_invalid_utf8_text_refused() -> None:
    with pytest.raises(WireError):
        wire.decode(b"\x62\xc3\x28", CAP)


def test_empty_body_refused() -> None:
    with pytest.raises(WireError):
        wire.decode(b"", CAP)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x01\x02", id="two-items"),
        pytest.param(cbor2.dumps({"a": 1}) + b"\xff", id="map-then-garbage"),
        pytest.param(cbor2.dumps({"v": 1}) + cbor2.dumps({"v": 2}), id="two-maps"),
    ],
)
def test_trailing_bytes_refused(data: bytes) -> None:
    with pytest.raises(WireError):
        wire.decode(data, CAP)


def test_size_cap_checked_before_decoding() -> None:
    # Garbage that would be a WireError if decoded: the cap is checked first, so it is PayloadTooLarge.
    with pytest.raises(PayloadTooLarge):
        wire.decode(b"\xff" * 101, 100)
    data = cbor2.dumps("x" * 200)
    with pytest.raises(PayloadTooLarge):
        wire.decode(data, len(data) - 1)
    assert wire.decode(data, len(data)) == "x" * 200


@pytest.mark.parametrize(
    "value", [{1, 2}, datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)], ids=["set", "datetime"]
)
def test_encode_emits_no_tags(value: Any) -> None:
    with pytest.raises(WireError):
        wire.encode(value)


def test_encode_refuses_unencodable() -> None:
    with pytest.raises(WireError):
        wire.encode(object())


# ---------------------------------------------------------------------------------------------------------------
# Frames


def test_frame_layout_and_cap() -> None:
    body = cbor2.dumps({"a": 1})
    assert wire.frame({"a": 1}, CAP) == struct.pack(">I", len(body)) + body
    assert wire.frame({"a": 1}, len(body)) == struct.pack(">I", len(body)) + body
    with pytest.raises(PayloadTooLarge):
        wire.frame({"a": 1}, len(body) - 1)


def test_frame_length() -> None:
    assert wire.frame_length(struct.pack(">I", 7), 10) == 7
    assert wire.frame_length(struct.pack(">I", 10), 10) == 10
    with pytest.raises(PayloadTooLarge):
        wire.frame_length(struct.pack(">I", 11), 10)
    with pytest.raises(PayloadTooLarge):
        wire.frame_length(b"\xff\xff\xff\xff", 10)
    with pytest.raises(WireError):
        wire.frame_length(struct.pack(">I", 0), 10)
    with pytest.raises(WireError):
        wire.frame_length(b"\x00\x00\x01", 10)


# ---------------------------------------------------------------------------------------------------------------
# map_size_after: a map's declared size, read before decoding


@pytest.mark.parametrize("count", [0, 1, 23, 24, 255, 256, 65_535, 65_536, 70_000])
def test_map_size_after_reads_every_header_width(count: int) -> None:
    prefix = wire.encode({"items": {}})[:-1]
    body = wire.encode({"items": {str(i): i for i in range(count)}})
    assert wire.map_size_after(body, prefix) == count


def test_map_size_after_declines_other_shapes() -> None:
    prefix = wire.encode({"items": {}})[:-1]
    assert wire.map_size_after(wire.encode({"items": [1, 2]}), prefix) is None  # an array, not a map
    assert wire.map_size_after(wire.encode({"other": {}}), prefix) is None
    assert wire.map_size_after(prefix, prefix) is None  # nothing after the prefix
    assert wire.map_size_after(prefix + b"\xbf", prefix) is None  # indefinite length
    assert wire.map_size_after(prefix + b"\xb9\x01", prefix) is None  # truncated 2-byte count
    huge = prefix + b"\xbb" + (2**40).to_bytes(8, "big")
    assert wire.map_size_after(huge, prefix) == 2**40  # declared, whatever follows: the caller refuses it
