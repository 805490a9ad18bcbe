"""Median word length per first letter: a reduce that needs every value of a key (no combiner can help)."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from typing import Any

from ..sdk import MapReduceJob


class MedianLength(MapReduceJob):
    """For each first character of a word (a ``str.split()`` token), the median length of the words starting
    with it, and how many there are: ``[median, count]``."""

    name = "median_length"

    def mapper(self, line: str) -> Iterator[tuple[str, int]]:
        for word in line.split():
            yield word[0], len(word)

    def reducer(self, key: Any, values: list[Any]) -> list[float | int]:
        median = statistics.median(values)  # order-free: the values arrive in any order
        return [int(median) if median == int(median) else median, len(values)]

    def order(self, key: Any, value: Any) -> Any:
        return -value[1]
