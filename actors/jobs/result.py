"""Results: what the master collects from the reducers (maps, or packed runs in top order) and the general encoding.

A result is keyed by canonical keys (actors.core.partition). Every encoding of it is exactly
``json.dumps(shown(top(result, len(result)), key_encoding(result)), separators=(",", ":"), ensure_ascii=True)``: a
job's ``encode`` may get there faster (word count merges its runs natively), never elsewhere. The JSON object names
its keys by its KEY ENCODING: ``"str"`` when every key is a str (the keys themselves, as always), ``"json"`` when
some key is not (every key as its compact JSON text, str keys quoted: ``"\"a\""``, ``"7"``, ``"[\"a\",3]"``, so
``"7"`` and ``7`` stay two keys). Part files and NDJSON carry every key typed instead (see actors.core.keyorder).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import WireError
from ..core.keyorder import key_text
from ..core.messages import Columns
from ..core.partition import TAG, decode_key, display_key
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


STR_KEYS, JSON_KEYS = "str", "json"  # the key encodings of a JSON object result


def key_encoding(result: Result) -> str:
    """How the JSON object of ``result`` names its keys: :data:`STR_KEYS` when every key is a str, else
    :data:`JSON_KEYS` (one pass over the keys at C speed; a packing engine's runs hold str keys only)."""
    if isinstance(result, (OrderedRuns, list)) or TAG not in "".join(result):
        return STR_KEYS
    # Tagged keys: ints and tuples, or strs that start with NUL (still strs, named as themselves).
    typed = any(key.startswith(TAG) and type(decode_key(key)) is not str for key in result)
    return JSON_KEYS if typed else STR_KEYS


def shown(entries: list[tuple[str, Any]], encoding: str) -> dict[str, Any]:
    """Entries (canonical keys) as the JSON object result names them under ``encoding``."""
    if encoding != STR_KEYS:
        return {key_text(key): value for key, value in entries}
    if TAG in "".join(key for key, _ in entries):  # a str starting with NUL: its canonical key is tagged
        return {display_key(key): value for key, value in entries}
    return dict(entries)
def records_json(records: list[list[Any]]) -> bytes:
    """A records result as its JSON: a list of ``[key, value]`` pairs, in the order given."""
    return json.dumps(records, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def general_json(result: Mapping[str, Any], top: Top) -> bytes:
    """Any job's result in its own top order, through ``json.dumps`` (TypeError or ValueError if JSON cannot
    carry a value)."""
    ordered = shown(top(result, len(result)), key_encoding(result))
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=True).encode("ascii")
