"""Word count's COLUMNS codec in Python: a map of positive integers as a key blob, end offsets and counts."""

from __future__ import annotations

import itertools
import operator
import sys
from array import array
from collections.abc import Mapping
from typing import Any

from ...core.errors import PayloadTooLarge, WireError
from ...core.messages import Columns

_BIG_ENDIAN = sys.byteorder == "big"
UINT32_MAX = 2**32 - 1
COUNT_MAX = 2**63 - 1  # the largest count a count table holds (the wire format carries 64 bits)


def _little(kind: str, values: Any) -> bytes:
    packed = array(kind, values)
    if _BIG_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def pack_columns(items: Mapping[str, int]) -> Columns:
    """The COLUMNS form of a non-empty map of positive integers (keys as Python's strict UTF-8 encodes them)."""
    if not items:
        raise ValueError("a COLUMNS frame holds at least one key")
    keys = list(items)
    joined = "".join(keys)
    blob = joined.encode("utf-8")
    # All ASCII (most text): a key's length in characters is its length in bytes, no per-key encode needed.
    lengths = map(len, keys) if len(blob) == len(joined) else map(len, map(str.encode, keys))
    if len(blob) > UINT32_MAX:  # only with a frame cap past 4 GiB: cut the frame smaller
        raise PayloadTooLarge(f"{len(blob)} bytes of keys do not fit a frame's 32-bit offsets")
    try:
        counts = _little("Q", items.values())
    except (OverflowError, TypeError):
        raise ValueError("COLUMNS values must be integers from 1 to 2**64-1") from None
    if min(items.values()) < 1:
        raise ValueError("COLUMNS values must be integers from 1 to 2**64-1")
    return Columns(keys=blob, ends=_little("I", itertools.accumulate(lengths)), counts=counts)


def unpack_columns(columns: Columns) -> dict[str, int]:
    """The map a COLUMNS frame stands for, every part of its layout checked: anything malformed is a WireError."""
    n, rest = divmod(len(columns.ends), 4)
    if rest or n == 0:
        raise WireError(f"columns frame: ends must be 1 or more 4-byte offsets, not {len(columns.ends)} bytes")
    if len(columns.counts) != 8 * n:
        raise WireError(f"columns frame: {n} keys need {8 * n} bytes of counts, not {len(columns.counts)}")
    ends, counts = array("I"), array("Q")
    ends.frombytes(columns.ends)
    counts.frombytes(columns.counts)
    if _BIG_ENDIAN:
        ends.byteswap()
        counts.byteswap()
    blob = columns.keys
    if ends[-1] != len(blob):
        raise WireError(f"columns frame: the last key ends at {ends[-1]}, not at the end of {len(blob)} key bytes")
    starts = ends[:-1]
    starts.insert(0, 0)
    # C-level iteration throughout: a frame holds up to MR_FRAME_KEYS keys.
    if any(map(operator.gt, starts, ends)):
        raise WireError("columns frame: key offsets must not decrease")
    if 0 in counts:
        raise WireError("columns frame: counts must be positive")
    try:
        keys = list(map(bytes.decode, map(blob.__getitem__, map(slice, starts, ends))))
    except UnicodeDecodeError as error:
        raise WireError(f"columns frame: a key is not valid UTF-8 ({error.reason})") from None
    items = dict(zip(keys, counts, strict=True))
    if len(items) != n:
        raise WireError(f"columns frame: {n - len(items)} duplicate keys")
    return items
