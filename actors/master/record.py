"""The job record: what the master knows of one submitted job, and the status it shows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..core.splits import Split
from ..inputs.ref import InputRef
from .splittable import SplitTable

QUEUED, RUNNING, FINALIZING, DONE, FAILED, CANCELLED = "queued", "running", "finalizing", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


@dataclass
class JobRecord:
    """One submitted job as the master knows it."""

    id: str
    epoch: int
    job_name: str
    input: InputRef
    created: float
    split_size: int
    state: str = QUEUED
    finished: float | None = None
    error: str = ""
    partitions: int = 0
    mappers: list[str] = field(default_factory=list)
    reducers: list[str] = field(default_factory=list)
    splits: list[Split] = field(default_factory=list)
    table: SplitTable | None = None
    recoveries: list[dict[str, Any]] = field(default_factory=list)  # partitions re-mapped after a reducer loss
    duplicate_streams: int = 0  # partition streams that reducers already had (retries, backups)
    result: dict[str, Any] | None = None
    stale_dropped: int = 0  # frames of other attempts or epochs seen on an assignment stream
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def status(self) -> dict[str, Any]:
        table = self.table
        progress = {
            "splits_done": table.done_count if table else 0,
            "splits_total": table.total if table else 0,
            "bytes_done": min(table.bytes_done, self.input.size) if table else 0,
            "bytes_total": self.input.size,
        }
        return {
            "id": self.id,
            "job": self.job_name,
            "epoch": self.epoch,
            "state": self.state,
            "error": self.error or None,
            "input": {"kind": self.input.kind, "name": self.input.name, "size": self.input.size},
            "created": self.created,
            "finished": self.finished,
            "partitions": self.partitions,
            "mappers": self.mappers,
            "reducers": self.reducers,
            "progress": progress,
            "attempts": {
                "started": table.attempts_started() if table else 0,
                "retries": table.retries if table else 0,
                "late_reports_dropped": table.late_reports if table else 0,
                "stale_dropped": self.stale_dropped,
                "duplicate_streams": self.duplicate_streams,
                "last_failure": (table.last_failure if table else "") or None,
            },
            "recoveries": self.recoveries,
            "splits": table.snapshot() if table else [],
        }
