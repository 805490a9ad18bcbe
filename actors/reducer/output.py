"""The reducer's output: a finished partition written as its part file, off the event loop."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from ..core.config import Settings
from ..core.logs import EventLog
from ..core.messages import Finalize
from ..inputs import s3out
from ..inputs.outdir import PartInfo, entry_lines, record_lines, staged_dir, write_part
from ..inputs.s3 import is_s3

log = EventLog(__name__)
_WRITES = itertools.count()  # makes each write's temporary name unique within this incarnation


async def write_output(settings: Settings, message: Finalize, totals: dict[str, Any] | list[list[Any]],
                       incarnation: str) -> PartInfo:
    """Write ``totals`` as the partition's part in the job's staging directory (in a thread: a disk or network
    volume may be slow); the master publishes it. The staging directory is never created here: the master makes it
    when the job starts and removes it when the job ends any other way, so a writer that comes too late (its job
    cancelled or superseded) gets a Conflict, or its rename fails, and nothing of it is published. On any error a
    MapReduceError names the cause and the temporary file is gone. Records (a list of ``[key, value]``) are written
    one a line in the order given."""
    lines = record_lines(totals) if isinstance(totals, list) else entry_lines(totals)
    if is_s3(message.output):  # a single PUT under the job's hidden attempt prefix; the master publishes it
        try:
            return await s3out.write_part(settings, message.output, message.job, message.epoch, message.partition,
                                          incarnation, lines)
        except Exception as error:
            log.warning("part_write_failed", job=message.job, epoch=message.epoch, partition=message.partition,
                        error=str(error))
            raise
    tag = f"{message.job}.{message.epoch}.{incarnation}-{next(_WRITES)}"

    def write() -> PartInfo:
        directory = staged_dir(settings.output_base, message.output, settings.max_output_depth, message.job,
                               message.epoch)
        return write_part(directory, message.partition, tag, lines)

    try:
        return await asyncio.to_thread(write)
    except Exception as error:
        log.warning("part_write_failed", job=message.job, epoch=message.epoch, partition=message.partition,
                    error=str(error))
        raise
