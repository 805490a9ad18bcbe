"""The natural order of job keys and values: one total order, the same on every actor, for parts, NDJSON, ties,
ranges and sorted values.

Keys (:func:`key_order`):

- ints numerically (``-15`` before ``-14``);
- strs by code point (Python's own ``str`` comparison);
- tuples element by element, a shorter prefix first;
- across types by rank: every int before every str, every str before every tuple.

Values (:func:`value_order`, for ``sort_values``): plain JSON data, ranked None < bool < number < str < list <
dict; within a rank False before True, numbers numerically (an int before a float of the same value), strs by
code point, lists element by element (a shorter prefix first), dicts by their items sorted by key (each item key
first, then its value).
"""

from __future__ import annotations

import json
from typing import Any

from .errors import WireError
from .partition import TAG, Key, canonical_key, decode_key

#: Rank of each key type in the order; documented in docs/jobs.md ("Key order").
RANK_INT, RANK_STR, RANK_TUPLE = 0, 1, 2
#: Rank of each value type in the value order (docs/jobs.md, "Key order and secondary sort").
RANK_NONE, RANK_BOOL, RANK_NUMBER, RANK_TEXT, RANK_LIST, RANK_DICT = range(6)


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


def typed_key(text: str) -> Any:
    """A canonical key as the JSON value it is shown as in part files and NDJSON: a str, an int, or an array."""
    return text if not text.startswith(TAG) else decode_key(text)


def canonical_of_text(text: str) -> str:
    """The canonical key a JSON object result names ``text`` under ``"key_encoding": "json"`` (inverse of
    :func:`key_text`); WireError if it is not such a name."""
    try:
        raw = json.loads(text)
    except ValueError:
        raise WireError(f"result key {text[:60]!r} is not JSON text") from None
    if type(raw) is str:
        return canonical_key(raw)
    decode_key(TAG + text)  # WireError unless it is a key's canonical JSON
    return TAG + text


def json_key(value: Any) -> Key:
    """The key a typed JSON value shows (a part file's or NDJSON line's first element: arrays are tuples);
    WireError if it shows none."""
    return decode_key(canonical_of_text(json.dumps(value, separators=(",", ":"), ensure_ascii=False)))


def key_text(text: str) -> str:
    """A canonical key's compact JSON text (``"a"`` quoted, ``7``, ``["a",3]``): how the JSON object result names
    keys when some key of it is not a str (``"key_encoding": "json"``)."""
    if text.startswith(TAG):
        decode_key(text)  # checked: only a well-formed canonical key is shown
        return text[1:]
    return json.dumps(text, separators=(",", ":"), ensure_ascii=False)


def value_order(value: Any) -> tuple[Any, ...]:
    """A sort key for a plain JSON value: ``sorted(values, key=value_order)`` is the natural value order."""
    kind = type(value)
    if kind is int:
        return (RANK_NUMBER, value, 0)
    if kind is str:
        return (RANK_TEXT, value)
    if kind is float:
        return (RANK_NUMBER, value, 1)
    if value is None:
        return (RANK_NONE,)
    if kind is bool:
        return (RANK_BOOL, value)
    if kind is list or kind is tuple:
        return (RANK_LIST, tuple(map(value_order, value)))
    if kind is dict:
        return (RANK_DICT, tuple((name, value_order(item)) for name, item in sorted(value.items())))
    raise TypeError(f"a value of type {kind.__name__} has no natural order")


def sorted_values(values: list[Any]) -> list[Any]:
    """``values`` in natural value order (a new list); one scalar type (all ints, all strs, all floats) sorts with
    no Python call per value."""
    kinds = set(map(type, values))
    if len(kinds) == 1 and kinds <= {int, str, float}:
        return sorted(values)
    return sorted(values, key=value_order)
