"""Word count's engine and SDK job: ``str.split()`` tokens, case-sensitive, summed; opt-in lower-casing, punctuation."""

from __future__ import annotations

import heapq
import string
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
from typing import Any

from ...core.errors import WireError
from ...sdk import JobConfigError, MapReduceJob
from ..engine import COUNT_LIMIT, CountTable
from ..result import OrderedRuns, Result, as_mapping, general_json
from .encode import counts_json, merge_json
from .kernel import CountTable as KernelTable
from .kernel import PythonCountTable, add_counts
from .packing import CountPacking, count_packing

PUNCTUATION = string.punctuation
FLAGS = {"true": True, "false": False}


def flag(params: Mapping[str, str], name: str, job: str) -> bool:
    """A boolean parameter: "true" or "false" (absent: false)."""
    raw = params.get(name, "false")
    if raw not in FLAGS:
        raise JobConfigError(f"job {job!r}: parameter {name} must be true or false, not {raw[:40]!r}")
    return FLAGS[raw]


class WordCountEngine:
    """The native engine: equals ``collections.Counter(text.split())`` exactly, with the normalisations asked for.

    Capabilities (actors.jobs.engine): its counts travel packed (:meth:`packing`), and without normalisations the
    kernel maps raw bytes (:meth:`byte_table`)."""

    name = "wordcount"

    def __init__(self, lower: bool = False, strip_punctuation: bool = False) -> None:
        self.lower = lower
        self.strip_punctuation = strip_punctuation
        self.plain = not lower and not strip_punctuation

    def words(self, text: str) -> Iterable[str]:
        if self.lower:
            text = text.lower()  # never adds or removes whitespace, so the same as lower-casing each token
        tokens = text.split()
        if self.strip_punctuation:
            return filter(None, map(str.strip, tokens, repeat(PUNCTUATION)))  # C-level: no Python loop
        return tokens

    def map(self, text: str, source: str) -> dict[str, Any]:
        return Counter(text.split() if self.plain else self.words(text))  # the hot loop, in C

    def partial(self) -> dict[str, Any]:
        return Counter()

    def map_into(self, acc: dict[str, Any], text: str, source: str) -> None:
        # Counter.update over an iterable counts in C straight into the accumulator: no per-key Python merge.
        acc.update(text.split() if self.plain else self.words(text))  # type: ignore[arg-type]

    def weight(self, acc: Mapping[str, Any]) -> int:
        return len(acc)

    def combine(self, into: dict[str, Any], part: Mapping[str, Any]) -> None:
        if not into:
            into.update(part)
            return
        add_counts(into, part)  # natively when the kernel is built

    def packing(self, native: bool) -> CountPacking | None:
        return count_packing(native)

    def byte_table(self, partitions: int, native: bool) -> CountTable | None:
        # Lower-casing and punctuation stripping keep the text path; plain counting needs no decode at all.
        if not self.plain:
            return None
        return (KernelTable if native else PythonCountTable)(partitions)

    def checksum(self, part: Mapping[str, Any]) -> int:
        return sum(part.values())

    def check(self, part: Mapping[str, Any]) -> None:
        counts = part.values()
        # C-level iteration: a reducer checks millions of counts.
        if counts and (set(map(type, counts)) != {int} or min(counts) <= 0 or max(counts) >= COUNT_LIMIT):
            raise WireError("wordcount values must be integers from 1 to 2**63 - 1")

    def finish(self, totals: dict[str, Any]) -> dict[str, Any]:
        return totals

    def top(self, result: Mapping[str, Any], n: int) -> list[tuple[str, Any]]:
        # Ties broken by word so the answer is the same whichever reducer reported first.
        return heapq.nsmallest(n, result.items(), key=lambda item: (-item[1], item[0]))

    def encode(self, result: Result) -> bytes:
        if isinstance(result, OrderedRuns):
            try:
                return merge_json(result.runs)
            except OverflowError:  # a count past 63 bits (only a lying reducer sends one): json.dumps has no limit
                return general_json(result.to_dict(), self.top)
        try:
            return counts_json(result)  # type: ignore[arg-type]  # a str -> int dict, or TypeError
        except (TypeError, OverflowError):
            return general_json(as_mapping(result), self.top)


class WordCount(MapReduceJob):
    """Count each word (a token of ``str.split()``, case-sensitive by default) across the input."""

    name = "wordcount"
    parameters = {"lower": "true: lower-case every word before counting (default false)",
                  "strip_punctuation": "true: strip ASCII punctuation from both ends of each word, dropping words "
                                       "left empty (default false)"}

    def configure(self, params: Mapping[str, str]) -> None:
        self._engine = WordCountEngine(flag(params, "lower", self.name), flag(params, "strip_punctuation", self.name))

    def mapper(self, line: str) -> Iterator[tuple[str, int]]:
        for word in self._engine.words(line):
            yield word, 1

    def combiner(self, key: Any, values: list[Any]) -> int:
        return sum(values)

    def reducer(self, key: Any, values: list[Any]) -> int:
        return sum(values)

    def order(self, key: Any, value: Any) -> Any:
        return -value

    def engine(self) -> WordCountEngine:
        return self._engine
