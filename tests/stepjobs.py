"""Jobs with steps, records and hooks, for tests (registered with MR_JOB_MODULES=tests.stepjobs)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from actors.sdk import Key, MapReduceJob, Step


class MostUsedWord(MapReduceJob):
    """Two steps: count every word, then the most used one (ties: the smallest word)."""

    name = "most_used_word"

    def steps(self) -> list[Step]:
        return [Step(mapper=self.words, combiner=self.total, reducer=self.total),
                Step(mapper=self.to_one_key, reducer=self.most)]

    def words(self, line: str) -> Iterator[tuple[Key, int]]:
        for word in line.split():
            yield word.lower(), 1

    def total(self, word: Key, counts: list[int]) -> int:
        return sum(counts)

    def to_one_key(self, word: Key, count: int) -> Iterator[tuple[Key, Any]]:
        yield "most", [count, word]

    def most(self, key: Key, pairs: list[list[Any]]) -> Iterator[tuple[Key, Any]]:
        count, word = max(pairs, key=lambda pair: (pair[0], [-ord(c) for c in pair[1]]))
        yield word, count


class LengthHistogram(MapReduceJob):
    """Three steps with tuple keys: word counts, then (length, first letter) -> words, then a histogram of how
    many distinct words each length has, records under int keys."""

    name = "length_histogram"

    def steps(self) -> list[Step]:
        return [Step(mapper=self.words, reducer=self.count),
                Step(mapper=self.by_shape, reducer=self.shape_words),
                Step(mapper=self.by_length, combiner=self.add, reducer=self.add)]

    def words(self, line: str) -> Iterator[tuple[Key, int]]:
        for word in line.split():
            yield word, 1

    def count(self, word: Key, counts: list[int]) -> int:
        return sum(counts)

    def by_shape(self, word: Key, count: int) -> Iterator[tuple[Key, Any]]:
        assert isinstance(word, str) and isinstance(count, int)
        yield (len(word), word[0]), word

    def shape_words(self, shape: Key, words: list[str]) -> Iterator[tuple[Key, Any]]:
        assert isinstance(shape, tuple), shape  # keys reach the next step as the job made them
        yield shape, sorted(words)

    def by_length(self, shape: Key, words: list[str]) -> Iterator[tuple[Key, int]]:
        assert isinstance(shape, tuple) and isinstance(shape[0], int)
        yield shape[0], len(words)

    def add(self, length: Key, counts: list[int]) -> int:
        return sum(counts)


class LongLines(MapReduceJob):
    """Map-only: every line longer than 20 characters, under its input's name and its length."""

    name = "long_lines"

    def mapper(self, line: str) -> Iterable[tuple[Key, Any]]:
        if len(line) > 20:
            yield (self.input_name, len(line)), line


class Fanout(MapReduceJob):
    """A generator reducer yielding 0, 1 or many records under new keys: a word seen once yields nothing, twice
    one record, more often one record per occurrence."""

    name = "fanout"

    def mapper(self, line: str) -> Iterable[tuple[Key, int]]:
        for word in line.split():
            yield word, 1

    def reducer(self, word: Key, counts: list[int]) -> Iterator[tuple[Key, Any]]:
        total = sum(counts)
        if total == 2:
            yield f"pair:{word}", total
        elif total > 2:
            for index in range(total):
                yield (str(word), index), total


class Hooked(MapReduceJob):
    """Hooks: each map task counts its lines in ``mapper_init``'s state and yields the count from
    ``mapper_final``; each reduce yields one marker record from ``reducer_final``."""

    name = "hooked"

    def mapper_init(self) -> None:
        self.lines = 0

    def mapper(self, line: str) -> Iterable[tuple[Key, int]]:
        self.lines += 1
        for word in line.split():
            yield word, 1

    def mapper_final(self) -> Iterator[tuple[Key, int]]:
        yield "__lines__", self.lines

    def reducer_init(self) -> None:
        self.keys = 0

    def reducer(self, word: Key, counts: list[int]) -> int:
        self.keys += 1
        return sum(counts)

    def reducer_final(self) -> Iterator[tuple[Key, Any]]:
        yield "__reduced__", 1


class SlowMostUsed(MapReduceJob):
    """Most used word in two steps whose second step's mapper pauses ``pause_ms`` per record (a fault test's window
    to strike in step 2), and whose second step's reducer raises when ``fail`` is "1"."""

    name = "slow_most_used"
    parameters = {"pause_ms": "milliseconds step 2's mapper sleeps per record", "fail": "1: step 2's reducer raises"}

    def steps(self) -> list[Step]:
        return [Step(mapper=self.words, combiner=self.total, reducer=self.total),
                Step(mapper=self.slowly, reducer=self.most)]

    def words(self, line: str) -> Iterator[tuple[Key, int]]:
        for word in line.split():
            yield word, 1

    def total(self, word: Key, counts: list[int]) -> int:
        return sum(counts)

    def slowly(self, word: Key, count: int) -> Iterator[tuple[Key, Any]]:
        time.sleep(int(self.params.get("pause_ms", "0")) / 1000)  # user code in a task process: may block
        yield "most", [count, word]

    def most(self, key: Key, pairs: list[list[Any]]) -> Iterator[tuple[Key, Any]]:
        if self.params.get("fail") == "1":
            raise RuntimeError("step 2 fails on purpose")
        count, word = max(pairs, key=lambda pair: (pair[0], [-ord(c) for c in pair[1]]))
        yield word, count


class SlowLines(MapReduceJob):
    """Map-only: each line's length under its first word, pausing ``pause_ms`` per line (a fault test's window)."""

    name = "slow_lines"
    parameters = {"pause_ms": "milliseconds the mapper sleeps per line",
                  "stall_ms": "milliseconds it sleeps on a line starting STALL (a straggler for backups)"}

    def mapper(self, line: str) -> Iterable[tuple[Key, Any]]:
        pause = self.params.get("stall_ms" if line.startswith("STALL") else "pause_ms", "0")
        time.sleep(int(pause) / 1000)  # user code in a task process: may block
        words = line.split()
        if words:
            yield words[0], [len(line), line[:8]]


class CountThenTotal(MapReduceJob):
    """Two steps whose last reducer returns one value per key: the output stays ``{key: value}``."""

    name = "count_then_total"

    def steps(self) -> list[Step]:
        return [Step(mapper=self.words, reducer=self.total), Step(mapper=self.by_length, reducer=self.total)]

    def words(self, line: str) -> Iterator[tuple[Key, int]]:
        for word in line.split():
            yield word, 1

    def total(self, key: Key, counts: list[int]) -> int:
        return sum(counts)

    def by_length(self, word: Key, count: int) -> Iterator[tuple[Key, int]]:
        yield len(str(word)), count
