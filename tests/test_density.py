"""Frame density: lists and maps counted from the bytes, exactly when the quick bound is not enough."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.core.density import SLICE, container_bound, count_containers


def run(walk: Generator[None, None, int]) -> tuple[int, int]:
    """The walk's answer and how many times it yielded."""
    yields = 0
    while True:
        try:
            next(walk)
        except StopIteration as done:
            return done.value, yields
        yields += 1


def containers_in(item: Any) -> int:
    if isinstance(item, list):
        return 1 + sum(map(containers_in, item))
    if isinstance(item, dict):
        return 1 + sum(containers_in(k) + containers_in(v) for k, v in item.items())
    return 0


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64) + 1, 2**64 - 1) | st.floats(allow_nan=False) | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner, max_size=5),
    max_leaves=30,
)


@given(values)
def test_the_walk_counts_exactly_and_the_quick_bound_is_never_below(item: Any) -> None:
    body = cbor2.dumps(item)
    exact = containers_in(item)
    assert run(count_containers(body, 10**9))[0] == exact
    assert container_bound(body) >= exact


def test_a_frame_of_empty_lists_is_counted_past_its_limit_and_the_walk_stops_there() -> None:
    body = cbor2.dumps({"w": [[]] * 100_000})
    counted, yields = run(count_containers(body, 1000))
    assert counted == 1001  # stopped once past the limit, not after 100 001
    assert yields <= 1001 // SLICE + 1


def test_the_walk_yields_between_slices_of_a_long_frame() -> None:
    body = cbor2.dumps({"k": ["é" * 3] * (5 * SLICE)})  # continuation bytes: the quick bound says "maybe"
    assert container_bound(body) > 5 * SLICE
    counted, yields = run(count_containers(body, 10))
    assert counted == 2 and yields >= 5


@pytest.mark.parametrize("body", [
    b"\x9f\x80\x80\xff",  # an indefinite list: refused by the decoder
    b"\xc1\x9f" + b"\x80" * 100,  # a tag
    b"\x81" + b"\x80" * 10,  # declares one item, holds ten: trailing bytes, refused by the decoder
    b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff",  # declares 2**64 - 1 items, holds none: truncated
])
def test_what_the_decoder_refuses_ends_the_walk_at_once(body: bytes) -> None:
    counted, yields = run(count_containers(body, 5))
    assert counted <= 2 and yields == 0
