"""The result encoding: a finished result as the compact ASCII JSON object the master holds, entries in top order.

A word-count result (str keys, int values) is ordered and encoded natively when the C extension
``actors.jobs._resultjson`` is built, else with C-level builtins only (two stable sorts and ``map``): both give
exactly ``json.dumps(dict(top(result, len(result))), separators=(",", ":"), ensure_ascii=True)``. Any other result
goes through its job's own ``top`` and ``json.dumps``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring_ascii
from typing import Any

Top = Callable[[Mapping[str, Any], int], list[tuple[str, Any]]]

_native: Callable[[dict[str, int]], bytes] | None
try:
    from ._resultjson import ordered_counts_json
except ImportError:  # built without a compiler (setup.py marks the extension optional)
    _native = None
else:
    _native = ordered_counts_json

NATIVE: bool = _native is not None


def counts_json(result: dict[str, int]) -> bytes:
    """A str -> int result, largest count first and ties by key, as compact ASCII JSON; TypeError or
    OverflowError when a key is not a str or a value not an int (the caller then encodes it the general way)."""
    if _native is not None and type(result) is dict:
        return _native(result)
    return counts_json_in_python(result)


def counts_json_in_python(result: Mapping[str, int]) -> bytes:
    """:func:`counts_json` without the extension: C-level sorts and escapes, no Python code per entry."""
    if set(map(type, result)) - {str} or set(map(type, result.values())) - {int}:
        raise TypeError("counts_json() takes str keys and int values")
    keys = sorted(result)  # ties by key ...
    keys.sort(key=result.__getitem__, reverse=True)  # ... kept by a stable sort on the count, largest first
    values = map(str, map(result.__getitem__, keys))
    entries = map(":".join, zip(map(encode_basestring_ascii, keys), values, strict=True))
    return ("{" + ",".join(entries) + "}").encode("ascii")


def general_json(result: Mapping[str, Any], top: Top) -> bytes:
    """Any job's result in its own top order, through ``json.dumps`` (TypeError or ValueError if JSON cannot
    carry a value)."""
    ordered = dict(top(result, len(result)))
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=True).encode("ascii")
