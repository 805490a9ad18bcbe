"""Inverted index: each word maps to the sorted list of input names that contain it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..core.errors import WireError
from ..sdk import MapReduceJob
from .result import Result, as_mapping, general_json


class InvertedIndexEngine:
    """The native engine: a reduce that is a set union, not a sum."""

    name = "inverted_index"

    def map(self, text: str, source: str) -> dict[str, Any]:
        names = [source]
        return dict.fromkeys(text.split(), names)  # one shared list; combine never mutates values

    def partial(self) -> dict[str, Any]:
        return {}

    def map_into(self, acc: dict[str, Any], text: str, source: str) -> None:
        self.combine(acc, self.map(text, source))

    def weight(self, acc: Mapping[str, Any]) -> int:
        return len(acc)

    def combine(self, into: dict[str, Any], part: Mapping[str, Any]) -> None:
        for key, names in part.items():
            have = into.get(key)
            if have is None:
                into[key] = names
            elif have != names:
                into[key] = sorted(set(have).union(names))

    def checksum(self, part: Mapping[str, Any]) -> int:
        return sum(map(len, part.values()))

    def check(self, part: Mapping[str, Any]) -> None:
        for names in part.values():
            if type(names) is not list or not names or not all(type(n) is str for n in names):
                raise WireError("inverted_index values must be non-empty lists of input names")

    def finish(self, totals: dict[str, Any]) -> dict[str, Any]:
        return totals

    def top(self, result: Mapping[str, Any], n: int) -> list[tuple[str, Any]]:
        return sorted(result.items(), key=lambda item: (-len(item[1]), item[0]))[:n]

    def encode(self, result: Result) -> bytes:
        return general_json(as_mapping(result), self.top)


class InvertedIndex(MapReduceJob):
    """Map each word to the sorted list of the names of the inputs containing it."""

    name = "inverted_index"

    def mapper(self, line: str) -> Iterator[tuple[str, str]]:
        for word in line.split():
            yield word, self.input_name

    def reducer(self, key: Any, values: list[Any]) -> list[str]:
        return sorted(set(values))

    def order(self, key: Any, value: Any) -> Any:
        return -len(value)

    def engine(self) -> InvertedIndexEngine:
        return InvertedIndexEngine()

