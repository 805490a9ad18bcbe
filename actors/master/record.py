"""The job record: what the master knows of one submitted job, its state machine, and the status it shows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..core.counters import CounterLimits, JobTally
from ..core.machine import move
from ..core.splits import Split
from ..inputs.ref import MANY, InputRef
from .splittable import SplitTable
from .splitview import SplitQuery, page, summary
from .stepflow import StepRun


class JobState(StrEnum):
    """Where a job is; the values are the ``state`` strings of the JSON status."""

    QUEUED = "queued"
    RUNNING = "running"
    FINALIZING = "finalizing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})
# Every job can fail or be cancelled until it is finished; a finished job never moves again.
JOB_MOVES: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.FINALIZING, JobState.FAILED, JobState.CANCELLED}),
    JobState.FINALIZING: frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED}),
    JobState.DONE: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}
# What each reducer's partition is doing, seen from the job's state: reducers stream in while the job runs, are
# asked for their reports while it finalizes, and have reported once it is done.
PARTITION_STATES: dict[JobState, str] = {
    JobState.QUEUED: "waiting",
    JobState.RUNNING: "receiving",
    JobState.FINALIZING: "finalizing",
    JobState.DONE: "reported",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled",
}
# The names callers imported before the states were an enum: the same members, not other strings.
QUEUED, RUNNING, FINALIZING, DONE, FAILED, CANCELLED = JobState


@dataclass
class JobRecord:
    """One submitted job as the master knows it."""

    id: str
    epoch: int
    job_name: str
    input: InputRef
    created: float
    split_size: int
    params: dict[str, str] = field(default_factory=dict)  # the job's parameters, sent with every assignment
    # Every input when the job has several (``input`` then summarises them, see many_inputs); empty: just ``input``.
    inputs: list[InputRef] = field(default_factory=list)
    output: str = ""  # the output directory under the data root; empty: the master holds the result
    files: dict[str, str] = field(default_factory=dict)  # side files pinned at submit, name -> SIZE:DIGEST
    whole: bool = False  # the job maps each input file whole (mapper_raw): one split per input
    format: str = "lines"  # the inputs' record format (actors.jobs.records), sent with every assignment
    interactive: bool = False  # a /compute job: answered on its own request, never journaled, forgotten once done
    answer: bytes = b""  # an interactive job's JSON answer, encoded once as it finished
    written: dict[str, Any] | None = None  # with an output, once done: what its _SUCCESS says
    finished: float | None = None
    error: str = ""
    partitions: int = 0  # N: asked for at submit (0: MR_REDUCER_COUNT), fixed when the job is planned
    partitioner: str = "hash"  # the job class's: "hash" or "total_order" (key ranges from a sample)
    cuts: list[str] = field(default_factory=list)  # a total-order job's N-1 cut points (canonical keys)
    sample: dict[str, Any] = field(default_factory=dict)  # what the total-order sample read and found
    phases: dict[str, float] = field(default_factory=dict)  # milliseconds per phase: sample, map, finalize
    mappers: list[str] = field(default_factory=list)
    reducers: list[str] = field(default_factory=list)
    splits: list[Split] = field(default_factory=list)
    table: SplitTable | None = None
    recoveries: list[dict[str, Any]] = field(default_factory=list)  # partitions re-mapped after a reducer loss
    duplicate_streams: int = 0  # partition streams that reducers already had (retries, backups)
    stale_dropped: int = 0  # frames of other attempts or epochs seen on an assignment stream
    # Counters and bad records summed over the attempts counted (a split's first SplitDone, a partition's first
    # report), and the job's max_bad_records.
    tally: JobTally = field(default_factory=lambda: JobTally(CounterLimits()))
    steps: int = 1  # the job's steps (its ``steps()``): each runs a map and a reduce in turn
    # The job's output shape (actors.jobs.steps.SHAPES), its last step's: "map" (no reducer) has that step's mappers
    # write (or report) one part per split, with no reduce.
    shape: str = "values"
    step: int = 0  # the step running now (or the last one run)
    step_runs: list[StepRun] = field(default_factory=list)  # per step, once the job is planned
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _state: JobState = field(default=JobState.QUEUED, init=False, repr=False)

    def input_at(self, index: int) -> InputRef:
        """The input a split of index ``Split.input`` reads."""
        return self.inputs[index] if self.inputs else self.input

    def input_list(self) -> list[InputRef]:
        return self.inputs or [self.input]

    @property
    def state(self) -> JobState:
        return self._state

    def transition(self, new: JobState) -> None:
        """Move to ``new``; an illegal move (e.g. out of a finished state) raises IllegalTransition."""
        self._state = move("job", JOB_MOVES, self._state, new)

    def partition_status(self) -> list[dict[str, Any]]:
        """Per partition: the reducer that owns it (ordinal partition % R), what it is doing, and how often it was
        re-mapped."""
        recovered = [r.get("partition") for r in self.recoveries]
        state = PARTITION_STATES[self.state]
        reducers = self.reducers
        return [
            {"partition": i, "reducer": reducers[i % len(reducers)] if reducers else None, "state": state,
             "recoveries": recovered.count(i)}
            for i in range(self.partitions if reducers else 0)
        ]

    def status(self, listing: SplitQuery | None = None) -> dict[str, Any]:
        """The JSON status: a summary of the splits, whatever their number, or the page ``listing`` asks for."""
        table = self.table
        progress = {
            "splits_done": table.done_count if table else 0,
            "splits_total": table.total if table else 0,
            "bytes_done": min(table.bytes_done, self.input.size) if table else 0,
            "bytes_total": self.input.size,
        }
        if self.step > 0 and self.step < len(self.step_runs):  # a later step reads the previous step's files
            run = self.step_runs[self.step]
            progress["bytes_done"], progress["bytes_total"] = min(run.table.bytes_done if run.table else 0,
                                                                  run.bytes_total), run.bytes_total
        return {
            "id": self.id,
            "job": self.job_name,
            "epoch": self.epoch,
            "state": self.state,
            "error": self.error or None,
            "input": {"kind": self.input.kind, "name": self.input.name, "size": self.input.size},
            "format": self.format,
            **({"inputs": inputs_summary(self.inputs)} if self.inputs else {}),
            "created": self.created,
            "finished": self.finished,
            "partitions": self.partitions,
            "partitioner": self.partitioner,
            **({"sample": self.sample} if self.sample else {}),
            "phases": self.phases,
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
            "counters": self.tally.counters_json(),
            "bad_records": self.tally.bad_json(),
            "step": self.step,
            "steps": [run.status() for run in self.step_runs],
            "partition_status": self.partition_status(),
            "splits": page(table, listing) if listing is not None else summary(table),
            **({"output": {"path": self.output, "written": self.written is not None}} if self.output else {}),
        }


SHOWN_INPUTS = 10  # names a status lists of a job's many inputs; a job may have MR_MAX_INPUTS


def many_inputs(refs: list[InputRef]) -> InputRef:
    """The summary ``input`` of a job with several: kind "many", named by their count, sized by their total."""
    return InputRef(MANY, "", f"{len(refs)} inputs", sum(r.size for r in refs))


def inputs_summary(refs: list[InputRef]) -> dict[str, Any]:
    """The status's ``inputs``: their count, kinds, total size and the first few names."""
    return {
        "count": len(refs),
        "kinds": sorted({r.kind for r in refs}),
        "compressed": sum(1 for r in refs if r.compression),
        "size": sum(r.size for r in refs),
        "first": [r.name for r in refs[:SHOWN_INPUTS]],
    }
