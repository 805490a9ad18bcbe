"""The natural order of job keys: one total order, the same on every actor, for parts, NDJSON, ties and ranges.

- ints numerically (``-15`` before ``-14``);
- strs by code point (Python's own ``str`` comparison);
- tuples element by element, a shorter prefix first;
- across types by rank: every int before every str, every str before every tuple.
"""

from __future__ import annotations

from typing import Any

from .partition import Key, decode_key

#: Rank of each key type in the order; documented in docs/jobs.md ("Key order").
RANK_INT, RANK_STR, RANK_TUPLE = 0, 1, 2


def key_order(key: Key) -> tuple[int, Any]:
    """A sort key for ``key``: ``sorted(keys, key=key_order)`` is the natural order."""
    kind = type(key)
    if kind is int:
        return (RANK_INT, key)
    if kind is str:
        return (RANK_STR, key)
    return (RANK_TUPLE, tuple(map(key_order, key)))  # type: ignore[arg-type]  # a tuple of keys


def wire_order(text: str) -> tuple[int, Any]:
    """The sort key of a canonical key (see actors.core.partition) by the key it encodes."""
    return key_order(decode_key(text))
