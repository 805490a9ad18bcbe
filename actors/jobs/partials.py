"""An SDK job's partial values per chunk: (key, value) pairs folded or grouped, then keys and values checked once.

A chunk's pairs are first gathered under the keys the job made (a dict operation per pair, nothing else); only its
distinct keys are then put in canonical form, and only the values that will travel are checked (a declared fold's
combined value, not each value folded into it). Equal keys of different types (``1``, ``1.0``, ``True``) are one
dict key, so only the first one seen in a chunk is checked: a job must not mix them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import chain
from typing import Any

from ..core.partition import TAG, Key
from ..sdk import Fold, MapReduceJob, check_key, plain_values
from .wordcount.kernel import add_counts, fold_sum

Pairs = Iterable[tuple[Key, Any]]
_MISSING = object()


def batch_pairs(job: MapReduceJob, lines: list[str]) -> Pairs:
    """The pairs of ``lines``: ``mapper_batch`` when the job defines it (a mapping's items), else ``mapper`` per line;
    user code runs as the result is iterated."""
    if type(job).has_mapper_batch():
        out = job.mapper_batch(lines)
        return out.items() if isinstance(out, Mapping) else out
    return chain.from_iterable(map(job.mapper, lines))  # no Python frame per line or pair between them


def fold_pairs(fold: Fold, pairs: Pairs) -> dict[Key, Any]:
    """Each key's values folded in the order they come: ``sum`` from 0, ``min`` and ``max`` keeping the first of
    equal values, exactly as the builtins over the same values."""
    part: dict[Key, Any] = {}
    get = part.get
    if fold is MapReduceJob.SUM:
        fold_sum(part, pairs)  # natively when the kernel is built
    elif fold is MapReduceJob.MIN:
        for key, value in pairs:
            have = get(key, _MISSING)
            if have is _MISSING or value < have:
                part[key] = value
    elif fold is MapReduceJob.MAX:
        for key, value in pairs:
            have = get(key, _MISSING)
            if have is _MISSING or value > have:
                part[key] = value
    else:
        raise TypeError(f"{fold!r} is not one of MapReduceJob.SUM, MIN, MAX")
    return part


def group_pairs(pairs: Pairs) -> dict[Key, list[Any]]:
    """Each key's values in a list, in the order they come."""
    part: dict[Key, list[Any]] = {}
    get = part.get
    for key, value in pairs:
        have = get(key)
        if have is None:
            part[key] = [value]
        else:
            have.append(value)
    return part


def merge_folded(fold: Fold, into: dict[str, Any], part: Mapping[str, Any]) -> None:
    """Fold ``part``'s values (each already one key's fold) into ``into``; natively for a sum when the kernel is
    built (``into[k] = into[k] + v``: equal to a sum from 0 since every value is already one)."""
    if not into:
        into.update(part)
    elif fold is MapReduceJob.SUM:
        add_counts(into, part)
    else:
        get = into.get
        for key, value in part.items():
            have = get(key, _MISSING)
            if have is _MISSING or (value < have if fold is MapReduceJob.MIN else value > have):
                into[key] = value


def wire_keys(part: dict[Key, Any]) -> dict[str, Any]:
    """``part`` keyed by canonical keys, each distinct key checked once (BadRequest naming a bad one); ``part``
    itself when every key is already canonical (a str not starting with NUL, with a UTF-8 form)."""
    if set(map(type, part)) <= {str}:
        joined = "".join(part)  # type: ignore[arg-type]  # every key is a str
        if TAG not in joined and (joined.isascii() or _encodes(joined)):
            return part  # type: ignore[return-value]
    return {check_key(key): value for key, value in part.items()}


def plain_folded(part: dict[str, Any]) -> dict[str, Any]:
    """``part`` with every value checked as plain data (converted where needed: tuples become lists)."""
    values = list(part.values())
    checked = plain_values(values)
    return part if checked is values else dict(zip(part, checked, strict=True))


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
