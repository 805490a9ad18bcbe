"""The step pipeline: each step of a multi-step job as the master tracks it, the next step's inputs planned over
the previous step's intermediate files, and those files made room for and removed (core/workfiles.py names them).

Records between steps never pass through the master: step ``k``'s reducers write one file per partition under
MR_WORK_DIR and report its size; step ``k + 1``'s mappers read those files as line-aligned splits. The master only
makes each step's directory before asking for the files, and removes the job's directory when the job ends,
whichever way (and, at startup, those of the jobs its journal says a previous master left running).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import JobFailed
from ..core.messages import PartFile, Report
from ..core.workfiles import job_dir, step_dir
from ..inputs.outdir import part_name
from ..inputs.ref import WORK, InputRef
from .splittable import SplitTable


@dataclass
class StepRun:
    """One step of a job: its splits' table once planned, the bytes it reads, and where its time went."""

    step: int
    state: str = "waiting"  # waiting, mapping, finalizing, done
    bytes_total: int = 0
    table: SplitTable | None = None
    map_ms: float | None = None
    finalize_ms: float | None = None

    def status(self) -> dict[str, Any]:
        table = self.table
        return {
            "step": self.step,
            "state": self.state,
            "splits_done": table.done_count if table else 0,
            "splits_total": table.total if table else 0,
            "bytes_done": min(table.bytes_done, self.bytes_total) if table else 0,
            "bytes_total": self.bytes_total,
            "map_ms": self.map_ms,
            "finalize_ms": self.finalize_ms,
        }


def next_inputs(job: str, epoch: int, step: int, reports: list[Report]) -> list[InputRef]:
    """Step ``step + 1``'s inputs: the intermediate files step ``step``'s reducers reported, one per partition, in
    partition order; empty files are skipped (they hold no record), but one input always remains so the next step
    still runs its reducers (and their hooks) once."""
    directory = step_dir(job, epoch, step)
    refs: list[InputRef] = []
    for partition, report in enumerate(reports):
        payload = report.payload
        if not isinstance(payload, PartFile) or payload.name != part_name(partition) or report.step != step:
            raise JobFailed(f"reducer {partition} did not report step {step + 1}'s intermediate file")
        refs.append(InputRef(WORK, f"{directory}/{payload.name}", f"step-{step + 1}/{payload.name}", payload.size))
    kept = [ref for ref in refs if ref.size > 0]
    return kept or refs[:1]


def make_step_dir(root: str, job: str, epoch: int, step: int) -> None:
    """Create the directory step ``step``'s reducers write into (blocking: call it in a thread)."""
    (Path(root) / step_dir(job, epoch, step)).mkdir(parents=True, exist_ok=True)


def remove_job_files(root: str, job: str, epoch: int) -> bool:
    """Remove every intermediate file of (job, epoch) (blocking: call it in a thread); whether there were any.
    Renamed away first, so a reducer still finishing a write finds no directory to rename its file into."""
    directory = Path(root) / job_dir(job, epoch)
    doomed = directory.with_name(f".removed-{directory.name}")
    try:
        directory.rename(doomed)
    except FileNotFoundError:
        return False
    shutil.rmtree(doomed, ignore_errors=True)
    return True
