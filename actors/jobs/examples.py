"""Example user jobs, written with the SDK as the README's "Writing a job" shows: word count per line and per batch,
and a TeraSort-style total-order sort.

Not registered by default: name this module in MR_JOB_MODULES (``actors.jobs.examples``) to run them. The
benchmark (scripts/bench.py) measures both against ``Counter(text.split())``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from itertools import chain
from typing import Any

from ..sdk import MapReduceJob


class LineWordCount(MapReduceJob):
    """Word count in the per-line style: each word of a line with a 1, summed."""

    name = "line_wordcount"
    combiner = MapReduceJob.SUM
    reducer = MapReduceJob.SUM

    def mapper(self, line: str) -> Iterator[tuple[str, int]]:
        for word in line.split():
            yield word, 1

    def order(self, key: str, value: Any) -> Any:
        return -value


class BatchWordCount(MapReduceJob):
    """Word count in the batch style: a batch of lines counted at once by ``Counter``, in C."""

    name = "batch_wordcount"
    reducer = MapReduceJob.SUM

    def mapper_batch(self, lines: list[str]) -> Counter[str]:
        return Counter(chain.from_iterable(map(str.split, lines)))

    def order(self, key: str, value: Any) -> Any:
        return -value


class TotalOrderSort(MapReduceJob):
    """TeraSort's shape: each line's first field is a key (an int when it reads as one), counted; the job's
    partitions are key ranges from a sample of the input, so its parts concatenated in order are sorted."""

    name = "total_order_sort"
    partitioner = "total_order"
    combiner = MapReduceJob.SUM
    reducer = MapReduceJob.SUM

    def mapper(self, line: str) -> Iterator[tuple[str | int, int]]:
        fields = line.split(maxsplit=1)
        if fields:
            key = fields[0]
            yield (int(key) if _is_int(key) else key), 1


def _is_int(text: str) -> bool:
    """Whether ``text`` is a decimal integer a key may be (64-bit)."""
    digits = text[1:] if text[:1] == "-" else text
    return digits.isascii() and digits.isdigit() and -(2**63) <= int(text) < 2**64
