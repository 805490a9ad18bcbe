"""The reducer's output: a finished partition written as its part file, off the event loop."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

from ..core.config import Settings
from ..core.errors import Conflict
from ..core.logs import EventLog
from ..core.messages import Finalize
from ..core.workfiles import check_step_dir
from ..inputs import s3out
from ..inputs.outdir import PartInfo, entry_lines, record_lines, staged_dir, write_part
from ..inputs.s3 import is_s3
from ..jobs.steps import record_line

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
    lines = record_lines((key, value) for key, value in totals) if isinstance(totals, list) else entry_lines(totals)
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


async def write_intermediate(settings: Settings, message: Finalize, totals: dict[str, Any] | list[list[Any]],
                             incarnation: str) -> PartInfo:
    """Write a step's records (``[canonical key, value]``) as the partition's intermediate file in the step's
    directory under MR_WORK_DIR, atomically (temporary file, fsync, rename), for the next step's mappers. The
    directory is never created here: the master makes it before it asks and removes the job's files when the job
    ends, so a writer of a job that ended meanwhile fails instead of leaving a file nobody removes."""
    if not isinstance(totals, list):
        raise Conflict(f"job {message.job_name!r} step {message.step} made a map, not records, for the next step")
    relative = check_step_dir(message.work, message.job, message.epoch, message.step)
    tag = f"{message.job}.{message.epoch}.{incarnation}-{next(_WRITES)}"
    lines = (record_line(key, value) for key, value in totals)

    def write() -> PartInfo:
        return write_part(Path(settings.work_root) / relative, message.partition, tag, lines)

    try:
        return await asyncio.to_thread(write)
    except Exception as error:
        log.warning("intermediate_write_failed", job=message.job, epoch=message.epoch, step=message.step,
                    partition=message.partition, error=str(error))
        raise
