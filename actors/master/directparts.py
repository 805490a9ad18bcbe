"""A map-only job's parts: the counted attempt of each split kept, then published (or its records returned)."""

from __future__ import annotations

from typing import Any

from ..core import wire
from ..core.config import Settings
from ..core.errors import JobFailed
from ..core.logs import EventLog
from ..core.messages import SplitDone
from ..inputs.outdir import PartInfo, attempt_name, attempt_token, part_name
from ..jobs.result import Result
from ..jobs.steps import MAP_ONLY
from .outputs import JobOutput
from .record import JobRecord

log = EventLog(__name__)


def records_size(records: list[Any]) -> int:
    """The bytes ``records`` take as CBOR: what a map-only job's held records count against MR_RESULT_MAX."""
    return len(wire.encode(records))


class DirectParts:
    """A map-only job's counted attempt per split, and (with no output) its records, held until the job ends."""

    def __init__(self, record: JobRecord, settings: Settings, output: JobOutput | None) -> None:
        self.record = record
        self.settings = settings
        self.output = output
        self.direct_done: dict[int, SplitDone] = {}
        self.direct_records: dict[int, list[Any]] = {}
        self.direct_bytes = 0

    @property
    def fields(self) -> dict[str, Any]:
        return {"job": self.record.id, "epoch": self.record.epoch}

    def at(self, step: int) -> bool:
        """Whether ``step`` is a map-only job's last one: its mappers write (or report) one part per split."""
        return self.record.shape == MAP_ONLY and step == self.record.steps - 1

    async def publish(self) -> Result:
        """A map-only job's output from the counted attempt of each split: with an output, each counted attempt's
        file published as ``part-<split>.jsonl`` (any other attempt's removed with the staging directory, or its
        object with the attempt prefix); else the counted attempts' records, in split order."""
        record = self.record
        missing = [split.index for split in record.splits if split.index not in self.direct_done]
        if missing:
            raise JobFailed(f"splits {missing[:10]} of the map-only job were never counted")
        done = [self.direct_done[split.index] for split in record.splits]
        if not record.output:
            return [item for split_done in done for item in self.direct_records.pop(split_done.split, [])]
        if self.output is None:
            raise JobFailed(f"output {record.output!r} was never opened")
        unwritten = [d.split for d in done if not d.part_sha256]
        if unwritten:
            raise JobFailed(f"the counted attempts of splits {unwritten[:10]} wrote no part")
        parts = [PartInfo(part_name(d.split), d.part_bytes, d.part_records, d.part_sha256) for d in done]
        record.written = await self.output.commit(
            parts, {part_name(d.split): attempt_token(d.attempt) for d in done},
            {part_name(d.split): attempt_name(d.split, d.attempt) for d in done})
        log.info("output_committed", **self.fields, parts=len(parts), keys=record.written["keys"],
                 bytes=record.written["bytes"], direct=True)
        return {}

    def keep(self, done: SplitDone, records: list[Any]) -> None:
        """Keep a map-only split's counted attempt: its part (with an output) or its records, these within
        MR_RESULT_MAX over the job."""
        self.direct_done[done.split] = done
        if self.record.output:
            return
        self.direct_records[done.split] = records
        self.direct_bytes += records_size(records)
        if self.direct_bytes > self.settings.result_max:
            raise JobFailed(f"the map-only job's records pass MR_RESULT_MAX={self.settings.result_max} bytes: give "
                            "it an output")
