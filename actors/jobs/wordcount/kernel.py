"""The word-count kernel: exact ``str.split()`` token counts of UTF-8 lines, native when the C extension is built.

``CountTable(partitions)`` is the C kernel (``_wordcount``, built from this package's ``_wc_*.c`` sources) when it was
built, else the pure-Python :class:`PythonCountTable`, with the same interface (actors.jobs.engine.CountTable); both
give, for any chunks of whole lines fed in order, exactly
``Counter(data.decode("utf-8", "replace").split())`` over their concatenation, grouped as
:func:`actors.core.partition.split_by_partition` groups keys. ``NATIVE`` (and :func:`native_status`, for the startup
log) say which one is in use.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ...core.errors import WireError
from ...core.messages import Columns
from ...core.partition import split_by_partition
from .columns import COUNT_MAX, pack_columns
from .columns import unpack_columns as _unpack_in_python

if TYPE_CHECKING:
    from ..engine import CountTable as CountTableInterface


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

    def take_columns(self, frame_keys: int, frame_bytes: int, /) -> list[list[tuple[bytes, bytes, bytes, int]]]:
        """The counts as COLUMNS frames per partition, at most ``frame_keys`` keys each (``frame_bytes`` is the native
        table's size hint: a frame too large for the cap is cut again by the spool)."""
        if frame_keys < 1:
            raise ValueError(f"frame_keys must be at least 1, not {frame_keys}")
        frames: list[list[tuple[bytes, bytes, bytes, int]]] = []
        for part in self.take():
            keys = list(part)
            cut = []
            for start in range(0, len(keys), frame_keys):
                chunk = {key: part[key] for key in keys[start : start + frame_keys]}
                packed = pack_columns(chunk)
                cut.append((packed.keys, packed.ends, packed.counts, sum(chunk.values())))
            frames.append(cut)
        return frames

    def add_columns(self, keys: bytes, ends: bytes, counts: bytes, /) -> None:
        items = _unpack_in_python(Columns(keys, ends, counts))
        counted = self._counts
        if any(counted.get(key, 0) + count > COUNT_MAX for key, count in items.items()):
            raise OverflowError("a count passed 2**63 - 1")  # all or nothing, as the native table
        counted.update(items)

    def ordered_columns(self) -> tuple[bytes, bytes, bytes]:
        counted = self._counts
        if max(counted.values(), default=0) > COUNT_MAX:
            raise OverflowError("a count passed 2**63 - 1")
        keys = sorted(counted)
        keys.sort(key=counted.__getitem__, reverse=True)  # stable: ties stay in key order
        run = pack_columns({key: counted[key] for key in keys}) if keys else Columns(b"", b"", b"")
        return run.keys, run.ends, run.counts

    def __len__(self) -> int:
        return len(self._counts)


NativeCountTable: type[CountTableInterface] | None
_native_error: str | None
_native_unpack: Callable[[bytes, bytes, bytes], dict[str, int]] | None
_native_add: Callable[[dict[str, int], dict[str, int]], None] | None
_native_move: Callable[[dict[str, int], dict[str, int], int], int] | None
_native_check: Callable[[bytes, bytes, bytes], int] | None
_native_fold_sum: Callable[[dict[Any, Any], Iterable[tuple[Any, Any]]], None] | None
try:
    from ._wordcount import CountTable as _Native
    from ._wordcount import add_counts as _add_natively
    from ._wordcount import check_columns as _check_natively
    from ._wordcount import fold_sum as _fold_sum_natively
    from ._wordcount import move_counts as _move_natively
    from ._wordcount import unpack_columns as _unpack_natively
except ImportError as error:  # built without a compiler (setup.py marks the extension optional)
    NativeCountTable, _native_unpack, _native_add, _native_move, _native_check = None, None, None, None, None
    _native_fold_sum = None
    _native_error = str(error)
else:
    NativeCountTable, _native_unpack, _native_add, _native_move, _native_check = (
        _Native, _unpack_natively, _add_natively, _move_natively, _check_natively)
    _native_fold_sum = _fold_sum_natively
    _native_error = None

NATIVE: bool = NativeCountTable is not None
CountTable: type[CountTableInterface] = NativeCountTable if NativeCountTable is not None else PythonCountTable


def unpack_columns(columns: Columns) -> dict[str, int]:
    """The map a COLUMNS frame stands for (see actors.core.messages.Columns); WireError when it is malformed.

    Native when the extension is built: about 3x faster than decoding the same keys as a CBOR map, where the
    pure-Python unpacking is about 1.6x slower (measured on 16 Ki-key frames; see docs/performance.md).
    """
    if _native_unpack is None:
        return _unpack_in_python(columns)
    try:
        return _native_unpack(columns.keys, columns.ends, columns.counts)
    except ValueError as error:
        raise WireError(f"columns frame: {error}") from None


def check_columns(columns: Columns) -> int:
    """Check a COLUMNS frame as :func:`unpack_columns` does, without decoding it when the extension is built: the sum
    of its counts; WireError when it is malformed."""
    if _native_check is None:
        return sum(_unpack_in_python(columns).values())
    try:
        return _native_check(columns.keys, columns.ends, columns.counts)
    except ValueError as error:
        raise WireError(f"columns frame: {error}") from None


def add_counts(into: dict[str, Any], part: Mapping[str, Any]) -> None:
    """``into[k] = into.get(k, 0) + v`` for every count of ``part`` (natively for plain dicts: ~3x faster)."""
    if _native_add is not None and type(into) is dict and isinstance(part, dict) and into is not part:
        _native_add(into, part)
        return
    get = into.get
    for key, count in part.items():
        into[key] = get(key, 0) + count


def fold_sum(into: dict[Any, Any], pairs: Iterable[tuple[Any, Any]]) -> None:
    """``for key, value in pairs: into[key] = into.get(key, 0) + value``, natively when built (no Python frame per
    pair; the same operations, so the same result and errors)."""
    if _native_fold_sum is not None and type(into) is dict:
        _native_fold_sum(into, pairs)
        return
    get = into.get
    for key, value in pairs:
        into[key] = get(key, 0) + value


def move_counts(into: dict[str, Any], part: dict[str, Any], limit: int) -> int:
    """Move up to ``limit`` counts out of ``part`` into ``into``; each key leaves ``part`` as it joins ``into``,
    so the two always hold every count exactly once. Returns how many moved."""
    if _native_move is not None and type(into) is dict and type(part) is dict and into is not part:
        return _native_move(into, part, limit)
    moved = dict(part.popitem() for _ in range(min(limit, len(part))))
    add_counts(into, moved)
    return len(moved)


def native_status() -> str:
    """``"yes"``, or ``"no (<why>)"``: what an actor logs at startup as ``native kernel: ...``."""
    return "yes" if _native_error is None else f"no ({_native_error})"


__all__ = ["NATIVE", "CountTable", "NativeCountTable", "PythonCountTable", "add_counts",
           "check_columns", "fold_sum", "move_counts", "native_status", "unpack_columns"]
