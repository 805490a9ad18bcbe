"""The ledger: a reducer's jobs, fenced by epoch, each with its committed splits and merged totals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import Conflict, NotFound, WireError
from ..core.messages import Commit, Data, StreamHeader
from ..jobs import Job, get_job

COMMITTED = "committed"
DUPLICATE = "duplicate"


class Stage:
    """One incoming stream, staged privately: nothing of it is visible until a valid COMMIT."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.items: dict[str, Any] = {}
        self.frames = 0
        self.keys = 0
        self.checksum = 0

    def add(self, data: Data) -> None:
        self.job.check(data.items)
        self.frames += 1
        self.keys += len(data.items)
        self.checksum += self.job.checksum(data.items)
        if self.items:
            self.job.combine(self.items, data.items)
        else:
            self.items = data.items  # the decoder's fresh dict: take it over rather than copy it

    def verify(self, commit: Commit) -> None:
        seen = Commit(frames=self.frames, keys=self.keys, checksum=self.checksum)
        if seen != commit:
            raise WireError(
                f"COMMIT does not match the stream: it claims {commit.frames} frames, {commit.keys} keys, "
                f"checksum {commit.checksum}; received {seen.frames}, {seen.keys}, {seen.checksum}"
            )


@dataclass
class PartitionState:
    """One job's partition at this reducer: which splits are merged, and the totals so far."""

    job: str
    epoch: int
    partition: int
    partitions: int
    job_def: Job
    touched: float
    committed: set[int] = field(default_factory=set)
    totals: dict[str, Any] = field(default_factory=dict)
    duplicates: int = 0

    def commit(self, split: int, stage: Stage) -> str:
        """The commit rule: merge a split's stream only the first time; synchronous, so nothing interleaves."""
        if split in self.committed:
            self.duplicates += 1
            return DUPLICATE
        self.job_def.combine(self.totals, stage.items)
        self.committed.add(split)
        return COMMITTED

    def missing(self, splits: int) -> list[int]:
        return sorted(set(range(splits)) - self.committed)


class Ledger:
    """Every job this reducer holds, by id; a newer epoch of a job replaces an older one, an older is refused."""

    def __init__(self, partition: int, clock: Callable[[], float]) -> None:
        self.partition = partition
        self.clock = clock
        self.jobs: dict[str, PartitionState] = {}
        self.stale = 0  # streams, commits and finalizes refused for an old epoch

    def admit(self, header: StreamHeader) -> PartitionState:
        """The state a new stream will commit into, created on first sight of (job, epoch)."""
        if header.partition != self.partition:
            raise Conflict(
                f"stream for partition {header.partition} reached reducer {self.partition}: routing is stale"
            )
        if header.partition >= header.partitions:
            raise WireError(f"partition {header.partition} is out of range for {header.partitions} partitions")
        key = header.key
        state = self.jobs.get(key.job)
        if state is not None:
            self._fence(state, key.epoch)
            if state.epoch == key.epoch:
                if state.partitions != header.partitions or state.job_def.name != header.job_name:
                    raise Conflict(f"job {key.job} epoch {key.epoch} was started with other parameters")
                state.touched = self.clock()
                return state
        state = PartitionState(
            job=header.job,
            epoch=header.epoch,
            partition=header.partition,
            partitions=header.partitions,
            job_def=get_job(header.job_name),
            touched=self.clock(),
        )
        self.jobs[header.job] = state
        return state

    def current(self, job: str, epoch: int) -> PartitionState:
        """The state of (job, epoch), or a clear 404/409 when it is unknown or superseded."""
        state = self.jobs.get(job)
        if state is None:
            raise NotFound(f"reducer {self.partition} holds no state for job {job}")
        self._fence(state, epoch)
        if state.epoch != epoch:
            raise NotFound(f"reducer {self.partition} holds no state for job {job} epoch {epoch}")
        state.touched = self.clock()
        return state

    def find(self, job: str, epoch: int) -> PartitionState | None:
        """The state of (job, epoch) if this reducer holds it; a stale epoch is still refused (409)."""
        state = self.jobs.get(job)
        if state is None:
            return None
        self._fence(state, epoch)
        if state.epoch != epoch:
            return None
        state.touched = self.clock()
        return state

    def _fence(self, state: PartitionState, epoch: int) -> None:
        if epoch < state.epoch:
            self.stale += 1
            raise Conflict(f"job {state.job} epoch {epoch} is stale: this reducer is at epoch {state.epoch}")

    def release(self, job: str, epoch: int) -> bool:
        state = self.jobs.get(job)
        if state is None or state.epoch > epoch:
            return False
        del self.jobs[job]
        return True

    def expire(self, ttl: float) -> list[str]:
        """Forget jobs untouched for ``ttl`` seconds (finished or abandoned by a master that is gone)."""
        cutoff = self.clock() - ttl
        old = [job for job, state in self.jobs.items() if state.touched < cutoff]
        for job in old:
            del self.jobs[job]
        return old
