"""Word count: tokens as ``str.split()`` makes them, case-sensitive, summed."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..core.errors import WireError
from .kernel import add_counts, move_counts


class WordCount:
    """Equals ``collections.Counter(text.split())`` exactly."""

    name = "wordcount"
    integer_values = True  # its partials may travel as COLUMNS frames (actors/core/messages.py)

    def map(self, text: str, source: str) -> dict[str, Any]:
        return Counter(text.split())  # the hot loop, in C

    def partial(self) -> dict[str, Any]:
        return Counter()

    def map_into(self, acc: dict[str, Any], text: str, source: str) -> None:
        # Counter.update over an iterable counts in C straight into the accumulator: no per-key Python merge.
        acc.update(text.split())  # type: ignore[arg-type]

    def combine(self, into: dict[str, Any], part: Mapping[str, Any]) -> None:
        if not into:
            into.update(part)
            return
        add_counts(into, part)  # natively when the kernel is built

    def merge_slice(self, into: dict[str, Any], part: dict[str, Any], limit: int) -> int:
        """Move up to ``limit`` counts from ``part`` into ``into`` (a reducer's merge, a slice at a time)."""
        return move_counts(into, part, limit)

    def checksum(self, part: Mapping[str, Any]) -> int:
        return sum(part.values())

    def check(self, part: Mapping[str, Any]) -> None:
        counts = part.values()
        # C-level iteration: a reducer checks millions of counts.
        if counts and (set(map(type, counts)) != {int} or min(counts) <= 0):
            raise WireError("wordcount values must be positive integers")

    def finish(self, totals: dict[str, Any]) -> dict[str, Any]:
        return totals

    def top(self, result: Mapping[str, Any], n: int) -> list[tuple[str, Any]]:
        # Ties broken by word so the answer is the same whichever reducer reported first.
        return heapq.nsmallest(n, result.items(), key=lambda item: (-item[1], item[0]))
