"""Bad records: a batch of lines mapped whole, or, when it fails, record by record, skipping those that fail.

A batch is mapped at once (``mapper`` per line, or one ``mapper_batch`` call). If that raises, its counters go back to
where they were and each line is mapped again alone (``mapper_batch`` gets a batch of one line: the SDK lets the
framework pick the batches): a line that fails alone is a bad record. Under ``max_bad_records`` it is skipped and
counted (its input, byte offset and error); with none allowed (the default) the attempt fails naming it. So a bad
record is one whose parsing or mapping fails on its own, whatever batch it came in, as the sequential oracle finds.
"""

from __future__ import annotations

from typing import Any

from ..core.counters import BadRecord, BadRecords, Counters, error_text, past_budget
from ..sdk import JobCodeError, RecordError
from .adapter import SdkJob
from .records import LINES, parse


def map_batch(job: SdkJob, acc: dict[str, Any], data: bytes, offset: int, source: str, counters: Counters,
              bad: BadRecords, fmt: str = LINES) -> None:
    """Map ``data`` (whole lines, raw UTF-8, starting at byte ``offset`` of input ``source``, records of format
    ``fmt``: actors.jobs.records) into ``acc``."""
    mark = counters.mark()
    try:
        part = job.map_part(parse(data, fmt, source, offset), source)
    except JobCodeError as error:
        _not_a_record(error, counters)
        counters.reset(mark)
    else:
        job.merge_part(acc, part)
        return
    lines = data.split(b"\n")  # only "\n" ends a line, as lines_of says
    if lines and lines[-1] == b"":
        lines.pop()
    position = offset
    for line in lines:
        _map_one(job, acc, line, position, source, counters, bad, fmt)
        position += len(line) + 1


def _map_one(job: SdkJob, acc: dict[str, Any], line: bytes, offset: int, source: str, counters: Counters,
             bad: BadRecords, fmt: str) -> None:
    """One line parsed and mapped alone; a failure is a bad record: skipped within the budget, else the attempt
    fails."""
    mark = counters.mark()
    try:
        part = job.map_part(parse(line + b"\n", fmt, source, offset), source)
    except JobCodeError as error:
        _not_a_record(error, counters)
        counters.reset(mark)
        if bad.allowed == 0 and isinstance(error, RecordError):  # it names its input and offset already
            raise
        if bad.allowed == 0:  # the job's failure as before, now naming the record
            failure = JobCodeError(f"{error.message} (the record at byte {offset})")
            failure.traceback = error.traceback
            raise failure from None
        bad.add(source, offset, error_text(error.__context__ or error))
        if bad.over:
            first = [BadRecord(0, name, at, text) for name, at, text in bad.first]
            raise JobCodeError(f"job {job.name!r}: {past_budget(bad.allowed, bad.count, first)}") from None
        return
    job.merge_part(acc, part)


def _not_a_record(error: JobCodeError, counters: Counters) -> None:
    """Raise what no record is to blame for: a counter limit the job broke, or the job's MemoryError (the task
    process's failure, retried, which the worker finds as the error's context)."""
    counters.check()
    if isinstance(error.__context__, MemoryError):
        raise error
