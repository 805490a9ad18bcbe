"""The frame encoder: a mapper's partial values for one split, combined, partitioned and encoded as shuffle frames.

Run by the mapper itself for a native engine, and by a task process for user code (actors.tasks.worker)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from ..core import wire
from ..core.density import too_dense
from ..core.errors import KeyTooLarge, MapReduceError, PayloadTooLarge, ValueTooLarge, shown
from ..core.messages import Columns, Data, KeyPart, to_wire
from ..core.ranges import Router
from ..jobs import CountTable, Job, byte_table_of, packing_of
from ..jobs.adapter import IN_ORDER, SdkJob
from ..jobs.records import LINES, parse
from ..jobs.steps import output_line

# Bytes of a frame besides one key and its value: length prefix, the message map, its field names and type name,
# the string headers (at most 31 bytes, counted from the encoding; kept generous).
FRAME_OVERHEAD = 40
TICK_PAIRS = 64  # a whole-file mapper's pairs between two chances to report progress


class FrameEncoder:
    """Partial values for every partition of one split, combined and encoded as shuffle frames; a subclass keeps
    the frames (:meth:`_store`)."""

    def __init__(
        self,
        job: Job,
        partitions: int,
        key_budget: int,
        frame_cap: int,
        frame_keys: int = 16 * 1024,
        max_key: int = 64 * 1024 * 1024,
        native: bool = True,
        fmt: str = LINES,
        cuts: list[str] | None = None,
    ) -> None:
        """``cuts``: a total-order job's cut points (actors.core.ranges); none: partitions by the stable hash."""
        self.job = job
        self.fmt = fmt  # the input's record format (actors.jobs.records); an SDK job's records are parsed here
        self.partitions = partitions
        self.router = Router(partitions, cuts or ())
        self.key_budget = key_budget
        self.frame_cap = frame_cap
        self.frame_keys = frame_keys
        self.max_key = max_key
        self._acc: dict[str, Any] = job.partial()
        # The engine's capabilities (actors.jobs.engine), resolved once: a table that maps raw bytes (no per-chunk
        # decode here), and a packing that ships COLUMNS frames (None: CBOR maps; the engine decides when packing
        # pays, e.g. only with its native kernel built and MR_NATIVE_KERNEL on).
        # An engine's table partitions by the stable hash itself: not for key ranges.
        self.table: CountTable | None = None if cuts else byte_table_of(job, partitions, native)
        self.packing = packing_of(job, native)
        # A key's list value may travel in pieces when it holds the key's values (an SDK job's lists); not when it
        # is one value (an SDK job's declared fold: a MAX of lists, say).
        self.lists = not (isinstance(job, SdkJob) and job.fold is not None)
        self.frames = [0] * partitions
        self.keys = [0] * partitions
        self.checksums = [0] * partitions
        self.sizes = [0] * partitions

    def feed(self, data: bytes, source: str, offset: int = 0) -> None:
        """Map one chunk of whole lines (raw UTF-8, errors replaced) that starts at byte ``offset`` of its input (an
        SDK job's records are parsed from it, and a bad one named by its offset); flush once past the key budget."""
        if self.table is None:
            if isinstance(self.job, SdkJob):
                self.job.map_records(self._acc, parse(data, self.fmt, source, offset), source)
                if self.job.weight(self._acc) >= self.key_budget:
                    self.flush()
                return
            self.map(data.decode("utf-8", "replace"), source)
            return
        self.table.feed(data)
        if len(self.table) >= self.key_budget:
            self.flush()

    def map(self, text: str, source: str) -> None:
        """Map one decoded chunk into the combined partial values; flush once past the key budget."""
        if self.table is not None:
            self.feed(text.encode("utf-8", "surrogatepass"), source)
            return
        self.job.map_into(self._acc, text, source)
        if self.job.weight(self._acc) >= self.key_budget:
            self.flush()

    def map_raw(self, path: str, source: str, tick: Callable[[int], None] | None = None, batch: int = 4096) -> None:
        """Map one whole input file with the job's ``mapper_raw``, ``batch`` pairs at a time: folded or grouped,
        flushed once past the key budget; ``tick`` is told the pairs made so far every :data:`TICK_PAIRS` pairs
        (it decides whether that is worth a message)."""
        job = self.job
        if not isinstance(job, SdkJob):
            raise MapReduceError(f"job {job.name!r} has a native engine: it takes no whole-file input")
        pairs = job.raw_pairs(path, source)
        done = 0
        while True:
            taken = _Taken(pairs, batch, done, tick)
            job.pairs_into(self._acc, functools.partial(iter, taken), "mapper_raw", source)
            done += taken.count
            if job.weight(self._acc) >= self.key_budget:
                self.flush()
            if taken.count < batch:
                return
    def hook(self, name: str, source: str) -> None:
        """Run the step's ``mapper_init`` or ``mapper_final`` (an SDK job's); its records join the partials."""
        if isinstance(self.job, SdkJob):
            self.job.hook_into(self._acc, name, source)
            if self.job.weight(self._acc) >= self.key_budget:
                self.flush()

    def flush(self) -> None:
        if isinstance(self.job, SdkJob) and self.job.direct:
            self._flush_direct(self.job)
            return
        if self.table is not None and self.packing is not None:  # frames cut by the table: no dicts made at all
            for partition, frames in enumerate(self.table.take_columns(self.frame_keys, self.frame_cap)):
                for keys, ends, counts, checksum in frames:
                    self._write_columns(partition, Columns(keys, ends, counts), checksum)
            return
        if self.table is not None:
            parts = self.table.take()
        else:
            acc, self._acc = self._acc, self.job.partial()
            if not acc:
                return
            parts = self.router.split(acc)
        for partition, items in enumerate(parts):
            if items:
                self._write(partition, items)

    def _flush_direct(self, job: SdkJob) -> None:
        """A map-only task's records, in the order mapped, as part-file lines of partition 0 (one block a flush)."""
        acc, self._acc = self._acc, job.partial()
        records = acc.get(IN_ORDER, [])
        if records:
            self._append(0, b"".join(output_line(wire_key, value) for wire_key, value in records))
            self.keys[0] += len(records)
            self.checksums[0] += len(records)

    def _write(self, partition: int, items: dict[str, Any]) -> None:
        if len(items) > self.frame_keys:
            # A reducer decodes a frame in one go on its event loop: a key count bounds how long that takes.
            ordered = iter(items)
            for _ in range(0, len(items), self.frame_keys):
                self._write(partition, {k: items[k] for k in itertools.islice(ordered, self.frame_keys)})
            return
        if len(items) == 1 and len(next(iter(items))) > self.frame_cap:
            self._write_long(partition, items)  # surely too long (a character is at least a byte): skip encoding it
            return
        try:
            if self.packing is not None:
                encoded = wire.frame(to_wire(self.packing.pack(items)), self.frame_cap)
            else:
                encoded = wire.frame(to_wire(Data(items)), self.frame_cap)
                if too_dense(encoded[wire.PREFIX:], self.frame_keys):  # a reducer would refuse it: cut it as too large
                    raise PayloadTooLarge(f"a frame of {len(items)} keys holds more lists and maps than a reducer "
                                          "takes")
        except PayloadTooLarge:
            if len(items) == 1:
                ((key, value),) = items.items()
                if self.lists and type(value) is list and len(value) > 1:
                    # One key's many values (an SDK job without a combiner): in several frames, which a reducer
                    # merges by the job's own combine, exactly as if they had come in one.
                    half = len(value) // 2
                    self._write(partition, {key: value[:half]})
                    self._write(partition, {key: value[half:]})
                    return
                self._write_long(partition, items)
                return
            keys = list(items)
            half = len(keys) // 2
            self._write(partition, {k: items[k] for k in keys[:half]})
            self._write(partition, {k: items[k] for k in keys[half:]})
            return
        self._append(partition, encoded)
        self.keys[partition] += len(items)
        self.checksums[partition] += self.job.checksum(items)

    def _write_columns(self, partition: int, columns: Columns, checksum: int) -> None:
        """One COLUMNS frame cut by the table (at MR_FRAME_KEYS keys and about the frame cap)."""
        assert self.packing is not None
        try:
            encoded = wire.frame(to_wire(columns), self.frame_cap)
        except PayloadTooLarge:
            # One key too long for a frame (it travels in pieces), or a frame over the table's size estimate.
            self._write(partition, self.packing.unpack(columns))
            return
        self._append(partition, encoded)
        self.keys[partition] += len(columns)
        self.checksums[partition] += checksum

    def _write_long(self, partition: int, items: dict[str, Any]) -> None:
        """One key too long for a frame: KEYPART frames with its pieces, then a DATA frame with the last piece."""
        ((key, value),) = items.items()
        encoded = key.encode("utf-8")
        if len(encoded) > self.max_key:
            raise KeyTooLarge(f"a word of {len(encoded)} bytes is longer than the longest key allowed "
                              f"(MR_MAX_KEY={self.max_key})")
        size = len(wire.encode(value))
        room = self.frame_cap - FRAME_OVERHEAD - size
        if room < 4:  # not even one character fits beside the value
            raise ValueTooLarge(f"job {self.job.name!r}: a value of {size} bytes (key {shown(key)}) does not fit a "
                                f"shuffle frame of {self.frame_cap} bytes (MR_FRAME_CAP)")
        start = 0
        while len(encoded) - start > room:
            end = start + room
            while encoded[end] & 0xC0 == 0x80:  # never cut inside a character
                end -= 1
            self._append(partition, wire.frame(to_wire(KeyPart(encoded[start:end].decode("utf-8"))), self.frame_cap))
            start = end
        last = {encoded[start:].decode("utf-8"): value}
        self._append(partition, wire.frame(to_wire(Data(last)), self.frame_cap))
        self.keys[partition] += 1
        self.checksums[partition] += self.job.checksum(items)

    def _append(self, partition: int, encoded: bytes) -> None:
        self._store(partition, encoded)
        self.frames[partition] += 1
        self.sizes[partition] += len(encoded)

    def _store(self, partition: int, encoded: bytes) -> None:
        raise NotImplementedError

    @property
    def total_keys(self) -> int:
        return sum(self.keys)


class _Taken:
    """At most ``limit`` items of ``source``, counted as they are taken (the source goes on after them); every
    :data:`TICK_PAIRS` items ``tick`` hears the count, ``before`` included."""

    def __init__(self, source: Iterator[Any], limit: int, before: int = 0,
                 tick: Callable[[int], None] | None = None) -> None:
        self.source = source
        self.limit = limit
        self.before = before
        self.tick = tick
        self.count = 0

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.count >= self.limit:
            raise StopIteration
        item = next(self.source)
        self.count += 1
        if self.tick is not None and self.count % TICK_PAIRS == 0:
            self.tick(self.before + self.count)
        return item
