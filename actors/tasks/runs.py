"""Sorted runs: a general job's grouped values written to disk as sorted runs and merged back key by key.

A run is a file of length-prefixed records (4-byte big-endian length, then one strict-CBOR ``[key, [value, ...]]``),
sorted by the key's canonical encoding, each record holding at most :data:`RECORD_VALUES` values: a key with more
values takes several consecutive records, so merging ``k`` runs holds ``k`` small records, never a whole key.
The merge is an external sort's k-way merge (as Hadoop's reduce-side merge); with more than :data:`FAN_IN` runs,
intermediate passes first merge them ``FAN_IN`` at a time. Everything here is blocking file I/O, for a thread.

Secondary sort (a ``sort_values`` job): runs are sorted by (key, value), each key's values in natural value order
(actors.core.keyorder.value_order), and the merge is by (key, value) too, value by value, so a key's values come
out of any number of runs in order while the merge still holds one record per run.
"""

from __future__ import annotations

import heapq
import shutil
import struct
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO

from ..core import wire
from ..core.errors import WireError
from ..core.keyorder import sorted_values, value_order

RECORD_VALUES = 1024  # values a record holds at most: bounds what a merge holds per run
FAN_IN = 64  # runs merged at once: bounds the open files and the records held during a merge
_LENGTH = struct.Struct(">I")

Record = tuple[str, list[Any]]


def write_run(path: Path, groups: Mapping[str, list[Any]], values: bool = False) -> None:
    """Write ``groups`` (key -> its values) as one sorted run at ``path``; ``values``: each key's values sorted."""
    _write_records(path, sorted_records(groups, values))


def sorted_records(groups: Mapping[str, list[Any]], values: bool = False) -> Iterator[Record]:
    """``groups`` as records in key order; ``values``: each key's values in natural value order too."""
    for key in sorted(groups):
        yield key, sorted_values(groups[key]) if values else groups[key]


def _write_records(path: Path, records: Iterable[Record]) -> None:
    with open(path, "wb") as out:
        for key, values in records:
            for start in range(0, len(values), RECORD_VALUES):
                body = wire.encode([key, values[start:start + RECORD_VALUES]])
                out.write(_LENGTH.pack(len(body)))
                out.write(body)


def read_run(path: Path) -> Iterator[Record]:
    """The records of a run, in order; WireError if the file is not a run this module wrote."""
    with open(path, "rb") as run:
        yield from _records(run, path)


def _records(run: BinaryIO, path: Path) -> Iterator[Record]:
    while True:
        head = run.read(_LENGTH.size)
        if not head:
            return
        if len(head) != _LENGTH.size:
            raise WireError(f"spilled run {path.name} ends inside a record length")
        (length,) = _LENGTH.unpack(head)
        body = run.read(length)
        if len(body) != length:
            raise WireError(f"spilled run {path.name} ends inside a record")
        item = wire.decode(body, length)
        if (type(item) is not list or len(item) != 2 or type(item[0]) is not str or type(item[1]) is not list):
            raise WireError(f"spilled run {path.name} holds a record that is not [key, [values]]")
        yield item[0], item[1]


def merge_records(streams: Iterable[Iterable[Record]], values: bool = False) -> Iterator[Record]:
    """The records of sorted streams in key order (records of one key stay in stream order); ``values``: streams
    sorted by (key, value) merged by (key, value), so each key's values come out in natural value order."""
    if not values:
        return heapq.merge(*streams, key=itemgetter(0))
    flat = [((key, value) for key, chunk in stream for value in chunk) for stream in streams]
    return _records_of(heapq.merge(*flat, key=_pair_order))


def _pair_order(pair: tuple[str, Any]) -> tuple[str, tuple[Any, ...]]:
    return pair[0], value_order(pair[1])


def _records_of(pairs: Iterable[tuple[str, Any]]) -> Iterator[Record]:
    """(key, value) pairs in key order, as records of at most RECORD_VALUES values of one key."""
    key = ""
    chunk: list[Any] = []
    for pair_key, value in pairs:
        if pair_key != key or len(chunk) >= RECORD_VALUES:
            if chunk:
                yield key, chunk
            key, chunk = pair_key, []
        chunk.append(value)
    if chunk:
        yield key, chunk


def grouped(records: Iterable[Record]) -> Iterator[tuple[str, Iterator[Any]]]:
    """Each key once, with a one-pass iterator over all its values (the records must be in key order).

    Values are read as the iterator is consumed; whatever of a key its consumer leaves is skipped before the next
    key, so a key's values are never all held at once.
    """
    source = iter(records)
    head = next(source, None)
    while head is not None:
        key = head[0]
        group = _Group(key, head[1], source)
        yield key, group
        head = group.drain()


class _Group:
    """The values of one key, spread over consecutive records of ``source``."""

    def __init__(self, key: str, first: list[Any], source: Iterator[Record]) -> None:
        self.key = key
        self.chunk: Iterator[Any] = iter(first)
        self.source = source
        self.after: Record | None = None  # the first record of the next key, once seen
        self.done = False

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        while True:
            for value in self.chunk:
                return value
            if self.done:
                raise StopIteration
            record = next(self.source, None)
            if record is None or record[0] != self.key:
                self.after, self.done = record, True
                raise StopIteration
            self.chunk = iter(record[1])

    def drain(self) -> Record | None:
        for _ in self:
            pass
        return self.after


class SpillRuns:
    """One partition state's runs on disk, in a private directory created on the first spill.

    Its owner (the partition state) calls :meth:`remove` when the job is released or expires.
    """

    def __init__(self, spool: str, prefix: str, sort_values: bool = False) -> None:
        self.spool = spool
        self.prefix = prefix
        self.sort_values = sort_values  # runs sorted by (key, value): a sort_values job's
        self.directory: Path | None = None
        self.paths: list[Path] = []
        self.written = 0  # bytes of runs written, for logs and tests
        self._serial = 0

    def _next_path(self) -> Path:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.spool or None))
        self._serial += 1
        return self.directory / f"run-{self._serial:06d}.bin"

    def spill(self, groups: Mapping[str, list[Any]]) -> None:
        """Write ``groups`` as a new sorted run."""
        path = self._next_path()
        write_run(path, groups, self.sort_values)
        self.written += path.stat().st_size
        self.paths.append(path)

    def compact(self) -> None:
        """Merge runs ``FAN_IN`` at a time until at most ``FAN_IN`` remain (so a merge opens a bounded number)."""
        while len(self.paths) > FAN_IN:
            batch, self.paths = self.paths[:FAN_IN], self.paths[FAN_IN:]
            path = self._next_path()
            _write_records(path, merge_records((read_run(p) for p in batch), self.sort_values))
            self.paths.append(path)
            for old in batch:
                old.unlink()

    def groups(self, memory: Mapping[str, list[Any]]) -> Iterator[tuple[str, Iterator[Any]]]:
        """Every key of the runs and of ``memory`` (values not spilled), sorted, each with all its values."""
        self.compact()
        in_memory = sorted_records(memory, self.sort_values)
        yield from grouped(merge_records([*(read_run(p) for p in self.paths), in_memory], self.sort_values))

    def remove(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
            self.paths = []

