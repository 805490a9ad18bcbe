"""The partitioner: a stable hash of a key's UTF-8 bytes picks its reducer, the same in every process."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import TypeVar

V = TypeVar("V")


def split_by_partition(items: Mapping[str, V], partitions: int) -> list[dict[str, V]]:
    """Group ``items`` by owning partition: crc32 of the key's UTF-8 bytes modulo ``partitions``, never Python's
    per-process salted ``hash()``. One hash per distinct key, never per word; the rule is defined here only."""
    if partitions == 1:
        return [dict(items)]
    parts: list[dict[str, V]] = [{} for _ in range(partitions)]
    crc32 = zlib.crc32
    for key, value in items.items():
        parts[crc32(key.encode("utf-8", "surrogatepass")) % partitions][key] = value
    return parts
