"""The partitioner and canonical keys: a stable hash of a key's canonical encoding picks its reducer everywhere.

A job's key is a ``str``, an ``int`` or a tuple of them (nested tuples too). Its CANONICAL ENCODING is a string:

- a ``str`` that does not start with NUL is itself (so built-in jobs' words travel and hash exactly as before);
- anything else (an ``int``, a tuple, or a ``str`` starting with NUL) is NUL followed by the key's compact JSON
  (``json.dumps(key, separators=(",", ":"), ensure_ascii=False)``, tuples as arrays): ``7`` -> ``"\\x007"``,
  ``("a", 1)`` -> ``'\\x00["a",1]'``, ``"\\x00x"`` -> ``'\\x00"\\u0000x"'``.

The partition of a key is ``crc32(utf8(canonical)) % partitions``: no salted ``hash()``, the same on every machine
and interpreter. Canonical strings are what DATA frames carry as map keys; :func:`decode_key` turns them back.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from typing import TypeVar

from .errors import BadRequest, WireError

V = TypeVar("V")
Key = str | int | tuple["Key", ...]
TAG = "\x00"
INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # what CBOR carries without a tag
MAX_KEY_DEPTH = 16


def canonical_key(key: Key) -> str:
    """The canonical encoding of a job key; raises BadRequest naming the problem for anything else."""
    if type(key) is str and not key.startswith(TAG):
        return key
    _check_key(key, 0)
    return TAG + json.dumps(key, separators=(",", ":"), ensure_ascii=False)


def _check_key(key: object, depth: int) -> None:
    if type(key) is str:
        return
    if type(key) is int:
        if not INT_MIN <= key <= INT_MAX:
            raise BadRequest(f"integer key {key} is out of the 64-bit range a key may have")
        return
    if type(key) is tuple and depth < MAX_KEY_DEPTH:
        for item in key:
            _check_key(item, depth + 1)
        return
    kind = "a tuple nested too deeply" if type(key) is tuple else f"a {type(key).__name__}"
    raise BadRequest(f"a job key must be a str, an int or a tuple of them, not {kind}: {_short(key)}")


def decode_key(text: str) -> Key:
    """The key a canonical string encodes; WireError when it is not one :func:`canonical_key` can produce."""
    if not text.startswith(TAG):
        return text
    try:
        raw = json.loads(text[1:])
    except (ValueError, RecursionError):
        raise WireError(f"malformed canonical key {_short(text)}") from None
    key = _tuples(raw, 0)
    if canonical_key(key) != text:
        raise WireError(f"key {_short(text)} is not in canonical form")
    return key


def _tuples(raw: object, depth: int) -> Key:
    if type(raw) is list and depth < MAX_KEY_DEPTH:
        return tuple(_tuples(item, depth + 1) for item in raw)
    if type(raw) is str or type(raw) is int:
        return raw
    raise WireError(f"a canonical key holds only strings, integers and arrays, not {_short(raw)}")


def display_key(text: str) -> str:
    """How a canonical key is named in a JSON result object: a str key as itself, others as their JSON text."""
    if not text.startswith(TAG):
        return text
    key = decode_key(text)
    return key if type(key) is str else text[1:]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def split_by_partition(items: Mapping[str, V], partitions: int) -> list[dict[str, V]]:
    """Group ``items`` (canonical keys) by owning partition: crc32 of the key's UTF-8 bytes modulo ``partitions``,
    never Python's per-process salted ``hash()``. One hash per distinct key, never per word; the rule is defined
    here only."""
    if partitions == 1:
        return [dict(items)]
    parts: list[dict[str, V]] = [{} for _ in range(partitions)]
    crc32 = zlib.crc32
    for key, value in items.items():
        parts[crc32(key.encode("utf-8", "surrogatepass")) % partitions][key] = value
    return parts


def owner(partition: int, reducers: int) -> int:
    """The reducer ordinal that owns ``partition`` when a job has ``reducers`` reducers: ``partition % reducers``,
    so with N partitions on R reducers each holds every R-th one (with N = R, reducer i owns partition i)."""
    return partition % reducers


def check_partitions(partitions: int, only: Sequence[int], cap: int) -> None:
    """WireError unless a peer's ``partitions`` is 1 to ``cap`` (MR_MAX_PARTITIONS) and every partition in ``only``
    is one of them: an actor sizes per-partition state from these numbers before it reads a byte of input."""
    if not 1 <= partitions <= cap:
        raise WireError(f"partitions {partitions} is not from 1 to {cap} (MR_MAX_PARTITIONS)")
    if any(partition >= partitions for partition in only):
        raise WireError(f"a partition to redo is out of range for {partitions} partitions")


def owned(ordinal: int, partitions: int, reducers: int) -> range:
    """The partitions reducer ``ordinal`` owns among ``partitions`` on ``reducers`` reducers."""
    return range(ordinal, partitions, reducers)
