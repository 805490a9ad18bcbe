"""The partitioner: stable across processes (whatever PYTHONHASHSEED), in range, every key placed exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.partition import split_by_partition


def partition_of(key: str, partitions: int) -> int:
    """The rule written out independently, as the design states it: crc32 of the UTF-8 bytes modulo R."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions


def placed(keys: list[str], partitions: int) -> list[int]:
    """Where the production partitioner puts each key."""
    parts = split_by_partition(dict.fromkeys(keys, 1), partitions)
    return [next(i for i, part in enumerate(parts) if key in part) for key in keys]


KEYS = (
    [f"word{i}" for i in range(300)]
    + ["", " ", "a", "A", "é", "e\u0301", "日本語", "😀", "\ufffd", "\x00", "straße", "STRASSE", "\ud800"]
    + ["x" * 1000]
)
COUNTS = (1, 2, 3, 7, 16)

CHILD = """
import json, sys
from actors.core.partition import split_by_partition
given = json.load(sys.stdin)
def placed(keys, r):
    parts = split_by_partition(dict.fromkeys(keys, 1), r)
    return [next(i for i, part in enumerate(parts) if key in part) for key in keys]
parts = {str(r): placed(given["keys"], r) for r in given["counts"]}
print(json.dumps({"hash": hash("salted?"), "parts": parts}))
"""


def run_child(seed: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", CHILD], input=json.dumps({"keys": KEYS, "counts": COUNTS}), env=env,
        capture_output=True, text=True, timeout=60, check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_stable_across_interpreters_with_different_hash_seeds() -> None:
    one, two = run_child("1"), run_child("2")
    # The seeds really do change hash(), so a hash()-based partitioner would disagree between the two.
    assert one["hash"] != two["hash"]
    here = {str(r): placed(KEYS, r) for r in COUNTS}
    assert here == {str(r): [partition_of(k, r) for k in KEYS] for r in COUNTS}
    assert one["parts"] == here
    assert two["parts"] == here


@given(key=st.text(), partitions=st.integers(1, 1000))
@settings(max_examples=200, deadline=None)
def test_in_range_and_deterministic(key: str, partitions: int) -> None:
    (p,) = placed([key], partitions)
    assert 0 <= p < partitions
    assert placed([key], partitions) == [p] == [partition_of(key, partitions)]


def test_one_partition_takes_everything() -> None:
    assert set(placed(KEYS, 1)) == {0}


def test_keys_spread_over_partitions() -> None:
    # Not a quality test, just that the partitioner is not degenerate (e.g. constant or length-based).
    spread = Counter(placed([f"w{i}" for i in range(4000)], 8))
    assert set(spread) == set(range(8))
    assert min(spread.values()) > 4000 / 8 / 2


@given(
    items=st.dictionaries(st.text(max_size=8), st.integers(1, 10**6), max_size=60),
    partitions=st.integers(1, 9),
)
@settings(max_examples=150, deadline=None)
def test_split_by_partition_places_every_key_once(items: dict[str, int], partitions: int) -> None:
    parts = split_by_partition(items, partitions)
    assert len(parts) == partitions
    seen: Counter[str] = Counter()
    for index, part in enumerate(parts):
        for key, value in part.items():
            assert partition_of(key, partitions) == index
            assert items[key] == value
            seen[key] += 1
    assert seen == Counter(items.keys())


def test_split_by_partition_does_not_alias_the_input() -> None:
    items = {"a": 1, "b": 2}
    for partitions in (1, 3):
        parts = split_by_partition(items, partitions)
        for part in parts:
            part["zzz"] = 99
        assert items == {"a": 1, "b": 2}


@pytest.mark.parametrize("partitions", [1, 2, 5])
def test_split_by_partition_of_nothing(partitions: int) -> None:
    assert split_by_partition({}, partitions) == [{} for _ in range(partitions)]
