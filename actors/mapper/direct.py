"""A map-only split's delivery: its records as the attempt's own part file (or object), or SplitRecords frames."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncGenerator, Iterable, Iterator
from typing import Any

from ..core import wire
from ..core.errors import ValueTooLarge
from ..core.logs import EventLog
from ..core.messages import Progress, RecordPairs, SplitRecords
from ..inputs import s3out
from ..inputs.outdir import PartInfo, attempt_name, attempt_token, staged_dir, write_part
from ..inputs.s3 import is_s3
from .attempt import MapAttempt
from .spool import Spool

log = EventLog(__name__)


class DirectDelivery(MapAttempt):
    """Where a map-only attempt's records go instead of any reducer."""

    async def _deliver(self, spool: Spool) -> AsyncGenerator[Progress | SplitRecords, None]:
        """A map-only split's records (part-file lines, in the order mapped): written as this attempt's own file in
        the output's staging directory (or its attempt object under an s3:// prefix), which the master publishes
        only if it counts this attempt; with no output, sent to the master in SplitRecords frames."""
        if self.a.output:
            async for progress in self._meanwhile(self._write_attempt(spool)):
                yield progress
            return
        for records in _record_batches(spool.blocks(0), self.settings.message_cap):
            yield SplitRecords(self.a.job, self.a.epoch, self.a.split, self.a.attempt, RecordPairs(records))

    async def _write_attempt(self, spool: Spool) -> None:
        a, s = self.a, self.settings
        if is_s3(a.output):  # one PUT of the whole attempt object; the master copies the counted one
            info = await s3out.write_part(s, a.output, a.job, a.epoch, a.split, attempt_token(a.attempt),
                                          spool.blocks(0))
        else:
            tag = f"{a.job}.{a.epoch}.{a.split}.{a.attempt}-{uuid.uuid4().hex[:8]}"

            def write() -> PartInfo:
                # Never created here: gone means the job ended (or a newer epoch runs), and this attempt is fenced.
                directory = staged_dir(s.output_base, a.output, s.max_output_depth, a.job, a.epoch)
                return write_part(directory, a.split, tag, spool.blocks(0), final=attempt_name(a.split, a.attempt))

            info = await asyncio.to_thread(write)
        self.part = dataclasses.replace(info, keys=spool.keys[0])  # records, not the blocks they were written in
        log.debug("split_part_written", job=a.job, split=a.split, attempt=a.attempt, records=self.part.keys,
                  bytes=self.part.bytes)


# Bytes of a SplitRecords message besides its records (ids, field names); kept generous.
RECORDS_OVERHEAD = 512


def _record_batches(blocks: Iterable[bytes], cap: int) -> Iterator[list[Any]]:
    """Part-file lines (from ``blocks``, cut anywhere) as lists of ``[key, value]`` records, each list's message
    under ``cap`` bytes (MR_MESSAGE_CAP); a record that cannot fit one message alone is refused by name."""
    room = cap - RECORDS_OVERHEAD
    batch: list[Any] = []
    size = 0
    carry = b""
    for block in blocks:
        lines = (carry + block).split(b"\n")
        carry = lines.pop()
        for line in lines:
            record = json.loads(line)
            length = len(wire.encode(record))
            if length > room:
                raise ValueTooLarge(f"a record of {length} bytes does not fit a message of MR_MESSAGE_CAP={cap} "
                                    "bytes: give the map-only job an output, or raise MR_MESSAGE_CAP")
            if size + length > room:
                yield batch
                batch, size = [], 0
            batch.append(record)
            size += length
    if batch:
        yield batch
