"""Total-order partitioning: N-1 cut points in the natural key order make N key ranges, found by binary search.

Partition ``p`` holds the keys ``k`` with ``cuts[p-1] <= k < cuts[p]`` in the natural order (actors.core.keyorder):
keys below the first cut go to partition 0, keys at or past the last to the last range. Cuts travel as canonical
keys (actors.core.partition), strictly ascending; fewer than N-1 cuts (a sample with few distinct keys) leave the
last partitions empty, never wrong.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any, TypeVar

from .errors import WireError
from .keyorder import RANK_INT, RANK_STR, wire_order
from .partition import TAG, split_by_partition

V = TypeVar("V")


class Router:
    """Which partition each canonical key goes to: the stable hash, or the ranges ``cuts`` make."""

    def __init__(self, partitions: int, cuts: Sequence[str] = ()) -> None:
        self.partitions = partitions
        self.cuts = list(cuts)
        self._orders = check_cuts(self.cuts, partitions)

    def split(self, items: Mapping[str, V]) -> list[dict[str, V]]:
        """``items`` grouped by partition: one dict per partition, in partition order."""
        if not self.cuts:
            return split_by_partition(items, self.partitions)
        parts: list[dict[str, V]] = [{} for _ in range(self.partitions)]
        orders = self._orders
        for key, value in items.items():
            parts[bisect_right(orders, route_order(key))][key] = value
        return parts


def route_order(text: str) -> tuple[int, Any]:
    """:func:`wire_order` of a canonical key as a mapper's encoder makes it, without decoding JSON for a plain str
    or an int (routing 1 M int keys by wire_order cost 8 s of decoding); anything else goes to wire_order."""
    if not text.startswith(TAG):
        return (RANK_STR, text)
    body = text[1:]
    digits = body[1:] if body[:1] == "-" else body
    if digits.isascii() and digits.isdigit() and (digits == "0" or digits[0] != "0") and body != "-0":
        return (RANK_INT, int(body))
    return wire_order(text)


def check_cuts(cuts: Sequence[str], partitions: int) -> list[tuple[int, Any]]:
    """The cuts' sort keys; WireError unless they are at most ``partitions - 1`` canonical keys, strictly ascending
    in the natural order (a mapper checks what a master sent before routing a key by it)."""
    if len(cuts) > max(partitions - 1, 0):
        raise WireError(f"{len(cuts)} cut points for {partitions} partitions: at most {partitions - 1}")
    orders = [wire_order(cut) for cut in cuts]
    for before, after in pairwise(orders):
        if not before < after:
            raise WireError("cut points are not strictly ascending in the natural key order")
    return orders


def pick_cuts(samples: Iterable[str], partitions: int) -> list[str]:
    """N-1 cut points from sampled canonical keys (as TeraSort's sampler: evenly spaced in the sorted sample), so
    each range holds about as many sampled keys; equal neighbours collapse into one cut."""
    ordered = sorted(samples, key=wire_order)
    if partitions < 2 or not ordered:
        return []
    cuts: list[str] = []
    last: tuple[int, Any] | None = None
    for i in range(1, partitions):
        cut = ordered[min(len(ordered) - 1, i * len(ordered) // partitions)]
        order = wire_order(cut)
        if last is None or last < order:
            cuts.append(cut)
            last = order
    return cuts
