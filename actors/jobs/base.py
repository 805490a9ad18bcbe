"""The job contract: how a job maps text, combines partial values, checks them and finishes totals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .result import Result


class Job(Protocol):
    """A registered MapReduce job; values are plain CBOR types so partials can cross the wire."""

    name: str

    def map(self, text: str, source: str) -> dict[str, Any]:
        """Map and combine one chunk of whole lines; ``source`` names the input it came from."""
        ...

    def partial(self) -> dict[str, Any]:
        """An empty accumulator for :meth:`map_into`."""
        ...

    def map_into(self, acc: dict[str, Any], text: str, source: str) -> None:
        """Map one chunk straight into ``acc``: the same as combining ``map(text)`` into it, often faster."""
        ...

    def weight(self, acc: Mapping[str, Any]) -> int:
        """What ``acc`` holds against MR_KEY_BUDGET: its keys, or its values when a key holds a list of them."""
        ...

    def combine(self, into: dict[str, Any], part: Mapping[str, Any]) -> None:
        """Merge ``part`` into ``into`` in place (a mapper's combiner and a reducer's merge alike)."""
        ...

    def checksum(self, part: Mapping[str, Any]) -> int:
        """A number a COMMIT frame carries so the reducer can tell it staged exactly what was sent."""
        ...

    def check(self, part: Mapping[str, Any]) -> None:
        """Raise WireError if a peer sent values this job cannot have produced."""
        ...

    def finish(self, totals: dict[str, Any]) -> dict[str, Any]:
        """Turn one partition's merged totals into its final result."""
        ...

    def top(self, result: Mapping[str, Any], n: int) -> list[tuple[str, Any]]:
        """The ``n`` most significant entries of a result, for ``?top=N`` and the CLI."""
        ...

    def encode(self, result: Result) -> bytes:
        """The whole result as compact ASCII JSON, entries in :meth:`top` order: what the master holds (see
        actors.jobs.result); TypeError or ValueError if JSON cannot carry a value."""
        ...
