"""The spool: a mapper's output for one split, combined, partitioned and framed until its reducers acknowledge it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO

from ..core.config import MiB, Settings
from ..core.errors import WireError
from ..core.messages import Commit
from ..jobs import Job
from ..tasks.encoder import FRAME_OVERHEAD, FrameEncoder
from ..tasks.protocol import MapDone

__all__ = ["FRAME_OVERHEAD", "Spool"]

READ_BLOCK = 256 * 1024
MEMORY_FILES = 8  # partitions a spool holds in memory at the full limit each; more share that much
MIN_FILE_MEMORY = 64 * 1024  # the least a partition's file holds in memory before it moves to disk


class Spool(FrameEncoder):
    """Partial values for every partition of one split, held as encoded DATA frames (in memory, then on disk).

    Frames are encoded here (:meth:`feed`, for a native engine) or by a task process, which sends them as bytes
    (:meth:`absorb`, then :meth:`settle` with its counts)."""

    def __init__(
        self,
        job: Job,
        partitions: int,
        key_budget: int,
        frame_cap: int,
        directory: str | None = None,
        memory_limit: int = 8 * MiB,
        frame_keys: int = Settings.frame_keys,  # MR_FRAME_KEYS' default, declared once in the settings
        max_key: int = Settings.max_key,  # MR_MAX_KEY's default
        native: bool = True,
        fmt: str = "lines",
        cuts: list[str] | None = None,
    ) -> None:
        super().__init__(job, partitions, key_budget, frame_cap, frame_keys=frame_keys, max_key=max_key,
                         native=native, fmt=fmt, cuts=cuts)
        # Each partition's file stays in memory up to its limit; past MEMORY_FILES partitions (a job may ask for
        # MR_MAX_PARTITIONS) the files share MEMORY_FILES limits, so a split never holds more than that in memory.
        if memory_limit and partitions > MEMORY_FILES:
            memory_limit = max(MIN_FILE_MEMORY, memory_limit * MEMORY_FILES // partitions)
        self.memory_limit = memory_limit
        self._files: list[IO[bytes]] = [
            tempfile.SpooledTemporaryFile(max_size=memory_limit, dir=directory or None) for _ in range(partitions)
        ]

    def _store(self, partition: int, encoded: bytes) -> None:
        self._files[partition].write(encoded)

    def absorb(self, partition: int, blob: bytes, frames: int) -> None:
        """Frames a task process encoded for ``partition``, appended as they are."""
        if not 0 <= partition < self.partitions:
            raise WireError(f"a task process sent frames for partition {partition} of {self.partitions}")
        self._files[partition].write(blob)
        self.frames[partition] += frames
        self.sizes[partition] += len(blob)

    def settle(self, done: MapDone) -> None:
        """The task process's counts per partition, once every frame is absorbed (they must agree)."""
        if done.frames != self.frames or done.sizes != self.sizes or len(done.keys) != self.partitions:
            raise WireError("a task process's frame counts disagree with the frames it sent")
        self.keys = list(done.keys)
        self.checksums = list(done.checksums)

    def commit(self, partition: int) -> Commit:
        return Commit(frames=self.frames[partition], keys=self.keys[partition], checksum=self.checksums[partition])

    def blocks(self, partition: int) -> Iterator[bytes]:
        """The partition's DATA frames as bytes, from the start; callable again for a retry."""
        file = self._files[partition]
        file.seek(0)
        while block := file.read(READ_BLOCK):
            yield block

    @property
    def disk_bytes(self) -> int:
        """Bytes spooled to disk: a partition's file moves there once it passes ``memory_limit``, all of it."""
        if not self.memory_limit:  # SpooledTemporaryFile's max_size 0: it never moves to disk
            return 0
        return sum(size for size in self.sizes if size > self.memory_limit)

    def close(self) -> None:
        for file in self._files:
            file.close()
