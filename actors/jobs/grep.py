"""Grep: count each match of a regular expression, per line (group 1 when the pattern has groups), as Hadoop's."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ..sdk import JobConfigError, MapReduceJob

MAX_PATTERN = 1000  # characters; a pattern is a user's input, compiled on every actor


class Grep(MapReduceJob):
    """Count every match of ``pattern`` in each line; with a group in the pattern, count group 1's text instead."""

    name = "grep"
    parameters = {"pattern": "a Python regular expression (required), matched within each line"}

    def configure(self, params: Mapping[str, str]) -> None:
        pattern = params.get("pattern")
        if not pattern:
            raise JobConfigError("grep needs a non-empty parameter pattern")
        if len(pattern) > MAX_PATTERN:
            raise JobConfigError(f"pattern is longer than {MAX_PATTERN} characters")
        try:
            self._regex = re.compile(pattern)
        except re.error as error:
            raise JobConfigError(f"bad pattern {pattern[:60]!r}: {error}") from None
        self._group = 1 if self._regex.groups else 0

    def mapper(self, line: str) -> Iterator[tuple[str, int]]:
        group = self._group
        for match in self._regex.finditer(line):
            text = match.group(group)
            if text is not None:  # group 1 did not take part in this match: nothing to count
                yield text, 1

    def combiner(self, key: Any, values: list[Any]) -> int:
        return sum(values)

    def reducer(self, key: Any, values: list[Any]) -> int:
        return sum(values)

    def order(self, key: Any, value: Any) -> Any:
        return -value
