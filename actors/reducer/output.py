"""The reducer's output: a finished partition written as its part file, off the event loop."""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

from ..core.errors import BadRequest
from ..core.logs import EventLog
from ..core.messages import Finalize
from ..inputs.outdir import PartInfo, entry_lines, resolve_output_dir, write_part

log = EventLog(__name__)
_WRITES = itertools.count()  # makes each write's temporary name unique within this incarnation


async def write_output(root: str, message: Finalize, totals: dict[str, Any], incarnation: str) -> PartInfo:
    """Write ``totals`` as the partition's part in the job's output directory (in a thread: a disk or network
    volume may be slow); a BadRequest names what failed, and the temporary file is gone."""
    tag = f"{message.job}.{message.epoch}.{incarnation}-{next(_WRITES)}"

    def write() -> PartInfo:
        directory = resolve_output_dir(root, message.output)  # confined again here: never trust the path given
        try:
            directory.mkdir(parents=True, exist_ok=True)  # the master made it; a volume mounted late may lack it
        except OSError as error:
            raise BadRequest(f"cannot create output directory {message.output!r}: "
                             f"{os.strerror(error.errno or 0)}") from None
        return write_part(directory, message.partition, tag, entry_lines(totals))

    try:
        return await asyncio.to_thread(write)
    except Exception as error:
        log.warning("part_write_failed", job=message.job, epoch=message.epoch, partition=message.partition,
                    error=str(error))
        raise
