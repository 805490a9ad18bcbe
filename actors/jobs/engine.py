"""Engine capabilities: what a native engine may add to the Job protocol, as typed protocols the roles resolve once.

A role never names a job: it asks :func:`packing_of` and :func:`byte_table_of` once, when it sets up a split's
spool or a partition, and uses what they answer (or the plain Job protocol when they answer None).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..core.messages import Columns

if TYPE_CHECKING:
    from .base import Job

COUNT_LIMIT = 2**63  # counts are below it: what a count table holds, and what a packed partition may sum to


class CountTable(Protocol):
    """Counts per key, fed raw chunks or COLUMNS frames; native or pure Python behind the same interface."""

    def __init__(self, partitions: int) -> None: ...

    @property
    def partitions(self) -> int: ...

    def feed(self, data: bytes | bytearray | memoryview, /) -> None:
        """Count every whitespace-separated token of ``data`` (UTF-8, errors replaced), a chunk of whole lines."""
        ...

    def take(self) -> list[dict[str, int]]:
        """The counts as one dict per partition (crc32 of the key's UTF-8 modulo partitions); empties the table."""
        ...

    def take_columns(self, frame_keys: int, frame_bytes: int, /) -> list[list[tuple[bytes, bytes, bytes, int]]]:
        """The counts as COLUMNS frames (keys, ends, counts, checksum) per partition, each at most ``frame_keys``
        keys and about ``frame_bytes`` bytes; empties the table."""
        ...

    def add_columns(self, keys: bytes, ends: bytes, counts: bytes, /) -> None:
        """Add a checked COLUMNS frame's counts, all or nothing (OverflowError past 2**63 - 1, table unchanged)."""
        ...

    def ordered_columns(self) -> tuple[bytes, bytes, bytes]:
        """The whole table as one COLUMNS run, largest count first and ties by key; the table is unchanged."""
        ...

    def __len__(self) -> int:
        """The number of distinct keys held."""
        ...


class Packing(Protocol):
    """How an engine's partial values travel and merge packed: as COLUMNS frames of counts (integers from 1 to
    2**63 - 1, summed; a frame's checksum is the sum of its counts), merged into a count table with no Python
    object per key, and reported as one run in the engine's top order."""

    def pack(self, items: Mapping[str, Any]) -> Columns:
        """The COLUMNS frame of a non-empty map of counts."""
        ...

    def unpack(self, columns: Columns) -> dict[str, Any]:
        """The map a COLUMNS frame stands for; WireError when it is malformed."""
        ...

    def check(self, columns: Columns) -> int:
        """Check a frame as :meth:`unpack` does without decoding it: the sum of its counts; WireError if malformed."""
        ...

    def table(self, partitions: int) -> CountTable:
        """An empty count table (a reducer's, with one partition, merges COLUMNS frames into it)."""
        ...

    def move_some(self, into: dict[str, Any], part: dict[str, Any], limit: int) -> int:
        """Move up to ``limit`` counts from ``part`` into ``into`` (each key leaves ``part`` as it joins ``into``);
        how many moved."""
        ...

    def report(self, totals: dict[str, Any]) -> Columns | None:
        """A finished partition as one run in top order, or None: report it as a map."""
        ...


@runtime_checkable
class PackingEngine(Protocol):
    """Capability: the engine's partials are counts that may travel packed (see :class:`Packing`)."""

    def packing(self, native: bool) -> Packing | None:
        """Its packing when ``native`` (MR_NATIVE_KERNEL) and the build allow it; None: partials travel as maps."""
        ...


@runtime_checkable
class ByteEngine(Protocol):
    """Capability: the engine maps raw UTF-8 chunks itself, so the mapper never decodes them."""

    def byte_table(self, partitions: int, native: bool) -> CountTable | None:
        """A table to feed raw chunks to (native when ``native`` and built), or None: map decoded text."""
        ...


def packing_of(job: Job, native: bool) -> Packing | None:
    """The job's packing, if its engine declares one and this actor may use it."""
    return job.packing(native) if isinstance(job, PackingEngine) else None


def byte_table_of(job: Job, partitions: int, native: bool) -> CountTable | None:
    """A table mapping raw chunks for the job, if its engine declares one."""
    return job.byte_table(partitions, native) if isinstance(job, ByteEngine) else None
