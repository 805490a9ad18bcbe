"""Jobs for per-job partitions with the other features (steps, counters, mapper_raw), for tests (registered with
MR_JOB_MODULES=tests.partitionjobs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from actors.sdk import Key, MapReduceJob, Step


class WordsByCount(MapReduceJob):
    """Two steps, total order: count every word, then each count's words (sorted) under the count, an int key; the
    last step's keys are the ones the sample must cut."""

    name = "words_by_count"
    partitioner = "total_order"

    def steps(self) -> list[Step]:
        return [Step(mapper=self.words, combiner=self.total, reducer=self.total),
                Step(mapper=self.by_count, reducer=self.sorted_words)]

    def words(self, line: str) -> Iterator[tuple[Key, int]]:
        for word in line.split():
            self.increment_counter("map", "words")
            yield word, 1

    def total(self, word: Key, counts: list[int]) -> int:
        return sum(counts)

    def by_count(self, word: Key, count: int) -> Iterator[tuple[Key, Any]]:
        yield count, word

    def sorted_words(self, count: Key, words: list[str]) -> Iterator[tuple[Key, Any]]:
        yield count, sorted(words)


class CountedSort(MapReduceJob):
    """Total order with counters: every line mapped counts once; the sample's maps must not."""

    name = "counted_sort"
    partitioner = "total_order"
    reducer = MapReduceJob.SUM

    def mapper(self, line: str) -> Iterator[tuple[Key, int]]:
        self.increment_counter("map", "lines")
        for word in line.split():
            yield word, 1


class RawSort(MapReduceJob):
    """Total order with a whole-file mapper: cannot be sampled a few records at a time (refused at submit)."""

    name = "raw_sort"
    partitioner = "total_order"
    reducer = MapReduceJob.SUM

    def mapper_raw(self, path: str, name: str) -> Iterator[tuple[Key, int]]:
        with open(path, encoding="utf-8") as file:
            for word in file.read().split():
                yield word, 1
