"""The word-count kernel: exact ``str.split()`` token counts of UTF-8 lines, native when the C extension is built.

``CountTable(partitions)`` is the C kernel (actors/jobs/_wordcount.c) when it was built, else the pure-Python
:class:`PythonCountTable`; both give, for any chunks of whole lines fed in order, exactly
``Counter(data.decode("utf-8", "replace").split())`` over their concatenation, grouped as
:func:`actors.core.partition.split_by_partition` groups keys. ``NATIVE`` (and :func:`native_status`, for the startup
log) say which one is in use.
"""

from __future__ import annotations

import operator
from collections import Counter
from typing import Protocol

from ..core.partition import split_by_partition


class WordCounts(Protocol):
    """A table of word counts, fed chunks of whole lines, emptied by :meth:`take`."""

    def __init__(self, partitions: int) -> None: ...

    @property
    def partitions(self) -> int: ...

    def feed(self, data: bytes | bytearray | memoryview, /) -> None:
        """Count every whitespace-separated token of ``data`` (UTF-8, errors replaced), a chunk of whole lines."""
        ...

    def take(self) -> list[dict[str, int]]:
        """The counts as one dict per partition (crc32 of the key's UTF-8 modulo partitions); empties the table."""
        ...

    def __len__(self) -> int:
        """The number of distinct keys held."""
        ...


class PythonCountTable:
    """The pure-Python kernel: ``Counter.update`` over ``str.split()``, partitioned per distinct key on take()."""

    def __init__(self, partitions: int) -> None:
        partitions = operator.index(partitions)  # what the native "n" argument accepts: any integer
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, not {partitions}")
        self._partitions = partitions
        self._counts: Counter[str] = Counter()

    @property
    def partitions(self) -> int:
        return self._partitions

    def feed(self, data: bytes | bytearray | memoryview, /) -> None:
        # str(buffer, ...) accepts any bytes-like object, as the native feed() does; .decode() would not.
        self._counts.update(str(data, "utf-8", "replace").split())

    def take(self) -> list[dict[str, int]]:
        counts, self._counts = self._counts, Counter()
        return split_by_partition(counts, self._partitions)

    def __len__(self) -> int:
        return len(self._counts)


NativeCountTable: type[WordCounts] | None
_native_error: str | None
try:
    from ._wordcount import CountTable as _Native
except ImportError as error:  # built without a compiler (setup.py marks the extension optional)
    NativeCountTable, _native_error = None, str(error)
else:
    NativeCountTable, _native_error = _Native, None

NATIVE: bool = NativeCountTable is not None
CountTable: type[WordCounts] = NativeCountTable if NativeCountTable is not None else PythonCountTable


def native_status() -> str:
    """``"yes"``, or ``"no (<why>)"``: what an actor logs at startup as ``native kernel: ...``."""
    return "yes" if _native_error is None else f"no ({_native_error})"


__all__ = ["NATIVE", "CountTable", "NativeCountTable", "PythonCountTable", "WordCounts", "native_status"]
