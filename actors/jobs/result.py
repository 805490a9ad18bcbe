"""Results: what the master collects from the reducers (maps, or packed runs in top order) and the general encoding.

Every encoding of a result is exactly ``json.dumps(dict(top(result, len(result))), separators=(",", ":"),
ensure_ascii=True)``: a job's ``encode`` may get there faster (word count merges its runs natively), never elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import WireError
from ..core.messages import Columns
from .wordcount.kernel import unpack_columns

Top = Callable[[Mapping[str, Any], int], list[tuple[str, Any]]]


@dataclass(frozen=True)
class OrderedRuns:
    """A result as the reducers of a packing engine reported it: one COLUMNS run per partition, each in top order
    (see actors.jobs.engine.Packing.report)."""

    runs: tuple[Columns, ...]

    def __len__(self) -> int:
        return sum(len(run) for run in self.runs)

    def to_dict(self) -> dict[str, int]:
        """The result as a plain dict (for callers that hold no encoded form); WireError if a run is malformed or
        two runs (two partitions) hold the same key."""
        merged: dict[str, int] = {}
        for run in self.runs:
            merged.update(unpack_columns(run))
        if len(merged) != len(self):
            raise WireError(f"{len(self) - len(merged)} keys reported by two reducers (partitions are disjoint)")
        return merged


# What the master collected: a dict, the reducers' ordered runs, or a list of ``[key, value]`` records (a job whose
# reducer yields records, a map-only job, a job with steps).
Result = Mapping[str, Any] | OrderedRuns | list[list[Any]]


def as_mapping(result: Result) -> Mapping[str, Any]:
    if isinstance(result, list):
        raise TypeError("a list of records has no mapping form")
    return result.to_dict() if isinstance(result, OrderedRuns) else result


def records_json(records: list[list[Any]]) -> bytes:
    """A records result as its JSON: a list of ``[key, value]`` pairs, in the order given."""
    return json.dumps(records, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def general_json(result: Mapping[str, Any], top: Top) -> bytes:
    """Any job's result in its own top order, through ``json.dumps`` (TypeError or ValueError if JSON cannot
    carry a value)."""
    ordered = dict(top(result, len(result)))
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=True).encode("ascii")
