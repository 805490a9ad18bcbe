"""Counts packed: word count's COLUMNS frames and count tables as an engine capability (actors.jobs.engine.Packing).

Any engine whose partial values are counts (integers from 1 to 2**63 - 1, summed, a frame's checksum their sum) may
declare this packing: an integer sum engine, say, gets the same native frames, merge and ordered report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...core.messages import Columns
from ..engine import CountTable as CountTableInterface
from . import kernel
from .columns import pack_columns
from .encode import ordered_columns


class CountPacking:
    """COLUMNS frames of counts, checked and unpacked natively, merged in a native count table."""

    def pack(self, items: Mapping[str, Any]) -> Columns:
        return pack_columns(items)

    def unpack(self, columns: Columns) -> dict[str, Any]:
        return kernel.unpack_columns(columns)

    def check(self, columns: Columns) -> int:
        return kernel.check_columns(columns)

    def table(self, partitions: int) -> CountTableInterface:
        return kernel.CountTable(partitions)

    def move_some(self, into: dict[str, Any], part: dict[str, Any], limit: int) -> int:
        return kernel.move_counts(into, part, limit)

    def report(self, totals: dict[str, Any]) -> Columns | None:
        return ordered_columns(totals)


PACKING = CountPacking()


def count_packing(native: bool) -> CountPacking | None:
    """The packing when ``native`` (MR_NATIVE_KERNEL) and the extension is built. Without it a reducer unpacks a
    frame 5x slower than it decodes the same CBOR map, so counts then travel as maps (docs/performance.md)."""
    return PACKING if native and kernel.NATIVE else None
