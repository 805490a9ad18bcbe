"""The spool: a mapper's output for one split, combined, partitioned and framed until its reducers acknowledge it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO, Any

from ..core import wire
from ..core.errors import PayloadTooLarge
from ..core.messages import Commit, Data, to_wire
from ..core.partition import split_by_partition
from ..jobs import Job

READ_BLOCK = 256 * 1024


class Spool:
    """Partial values for every partition of one split, held as encoded DATA frames (in memory, then on disk)."""

    def __init__(
        self,
        job: Job,
        partitions: int,
        key_budget: int,
        frame_cap: int,
        directory: str | None = None,
        memory_limit: int = 8 * 1024 * 1024,
    ) -> None:
        self.job = job
        self.partitions = partitions
        self.key_budget = key_budget
        self.frame_cap = frame_cap
        self._acc: dict[str, Any] = job.partial()
        self._files: list[IO[bytes]] = [
            tempfile.SpooledTemporaryFile(max_size=memory_limit, dir=directory or None) for _ in range(partitions)
        ]
        self.frames = [0] * partitions
        self.keys = [0] * partitions
        self.checksums = [0] * partitions
        self.sizes = [0] * partitions

    def map(self, text: str, source: str) -> None:
        """Map one chunk into the combined partial values; flush to frames once they pass the key budget."""
        self.job.map_into(self._acc, text, source)
        if len(self._acc) >= self.key_budget:
            self.flush()

    def flush(self) -> None:
        acc, self._acc = self._acc, self.job.partial()
        if not acc:
            return
        for partition, items in enumerate(split_by_partition(acc, self.partitions)):
            if items:
                self._write(partition, items)

    def _write(self, partition: int, items: dict[str, Any]) -> None:
        try:
            encoded = wire.frame(to_wire(Data(items)), self.frame_cap)
        except PayloadTooLarge:
            if len(items) == 1:
                raise
            keys = list(items)
            half = len(keys) // 2
            self._write(partition, {k: items[k] for k in keys[:half]})
            self._write(partition, {k: items[k] for k in keys[half:]})
            return
        self._files[partition].write(encoded)
        self.frames[partition] += 1
        self.keys[partition] += len(items)
        self.checksums[partition] += self.job.checksum(items)
        self.sizes[partition] += len(encoded)

    def commit(self, partition: int) -> Commit:
        return Commit(frames=self.frames[partition], keys=self.keys[partition], checksum=self.checksums[partition])

    def blocks(self, partition: int) -> Iterator[bytes]:
        """The partition's DATA frames as bytes, from the start; callable again for a retry."""
        file = self._files[partition]
        file.seek(0)
        while block := file.read(READ_BLOCK):
            yield block

    @property
    def total_keys(self) -> int:
        return sum(self.keys)

    def close(self) -> None:
        for file in self._files:
            file.close()
