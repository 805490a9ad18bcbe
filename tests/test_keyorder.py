"""The natural key order: ints numerically, strs by code point, tuples element-wise, types by rank."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from actors.core.keyorder import key_order, wire_order
from actors.core.partition import Key, canonical_key

keys = st.recursive(st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=8)


def test_ints_numerically_not_as_text() -> None:
    assert sorted([-14, -15, 2, 10], key=key_order) == [-15, -14, 2, 10]


def test_types_by_rank_and_tuples_elementwise() -> None:
    mixed: list[Key] = [("a", 2), "b", 3, ("a",), ("a", 10), "", (1, "z")]
    assert sorted(mixed, key=key_order) == [3, "", "b", (1, "z"), ("a",), ("a", 2), ("a", 10)]


def test_strings_by_code_point() -> None:
    assert sorted(["é", "z", "Z", "\U0001f600", "\uff5a"], key=key_order) == ["Z", "z", "é", "\uff5a", "\U0001f600"]


@given(st.lists(keys, max_size=12))
def test_a_total_order_equal_on_wire_keys(items: list) -> None:  # type: ignore[type-arg]
    by_key = sorted(items, key=key_order)
    by_wire = sorted(items, key=lambda key: wire_order(canonical_key(key)))
    assert [key_order(key) for key in by_key] == [key_order(key) for key in by_wire]
    for left, right in itertools.pairwise(by_key):
        assert key_order(left) <= key_order(right)
        assert (key_order(left) == key_order(right)) == (left == right)
